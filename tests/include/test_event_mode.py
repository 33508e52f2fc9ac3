"""Event mode versus batch mode, from the extras of the Asset events that triggered a run."""

from __future__ import annotations

from types import SimpleNamespace

from include.event_mode import (
    BATCH,
    EVENT,
    UNIT_TESTS,
    changed_sources,
    database_enforced_tests,
    event_exclusions,
    event_extras,
    event_selection,
    name_selectors,
    run_mode,
)
from include.push.targets import load_targets


def _events(*extras: dict) -> dict:
    """``triggering_asset_events`` as Airflow hands it to a task: Asset -> its events."""
    return {"asset": [SimpleNamespace(extra=x) for x in extras]}


def test_extract_run_started_by_change_messages_only_is_an_event_run():
    message = {"from_trigger": True, "payload": {"channel": "c360.source_changes.callcenter", "data": "{}"}}
    assert run_mode(event_extras(_events(message, message))) == EVENT
    assert run_mode(event_extras({})) == BATCH  # scheduled or manual: nothing triggered it
    assert run_mode(event_extras(None)) == BATCH
    assert run_mode(event_extras(_events(message, {"mode": BATCH}))) == BATCH


def test_changed_sources_only_when_every_trigger_was_an_event_run():
    callcenter = {"mode": EVENT, "source": "callcenter", "entities": {}}
    crm = {"mode": EVENT, "source": "crm"}
    assert changed_sources(event_extras(_events(callcenter))) == {"callcenter"}
    assert changed_sources(event_extras(_events(callcenter, crm))) == {"callcenter", "crm"}
    # a scheduled extract among the triggers makes it a full build
    assert changed_sources(event_extras(_events(callcenter, {"mode": BATCH, "source": "erp"}))) is None
    # an event without the source it came from cannot be narrowed: do everything
    assert changed_sources(event_extras(_events({"mode": EVENT}))) is None
    assert changed_sources([]) is None
    # the dbt DAG's mart events carry a list
    assert changed_sources([{"mode": EVENT, "sources": ["callcenter"], "rows": 3}]) == {"callcenter"}


def test_event_selection_intersects_each_changed_source_with_each_mart():
    assert event_selection(["callcenter", "callcenter"], ["dim_customer", "customer_crosswalk"]) == [
        "source:callcenter+,+customer_crosswalk",
        "source:callcenter+,+dim_customer",
    ]
    assert event_selection(["crm"], []) == []


def test_event_flows_of_a_call_center_change():
    registry = load_targets()
    flows = {f.name for f in registry.event_flows(["callcenter"])}
    # the CRM gets the new phone through the golden record; the other systems through the change flow
    assert flows == {"crm_golden_contacts", "callcenter_contact_changes"}
    assert registry.event_marts(["callcenter"]) == ["marts.customer_crosswalk", "marts.dim_customer"]
    assert {f.name for f in registry.event_flows(["marketing"])} == set()


def _model(name: str, materialized: str = "incremental", **config) -> dict:
    return {
        "unique_id": f"model.p.{name}",
        "resource_type": "model",
        "config": {"materialized": materialized, **config},
        "columns": {},
    }


def _test(name: str, test: str, model: str, column: str | None = None, kwargs=None, **config) -> dict:
    return {
        "unique_id": f"test.p.{name}",
        "name": name,
        "resource_type": "test",
        "attached_node": f"model.p.{model}" if model else None,
        "column_name": column,
        "test_metadata": {"name": test, "kwargs": kwargs or {}},
        "config": {"severity": "ERROR", "where": None, "store_failures": None, **config},
    }


def _manifest(*nodes: dict) -> dict:
    return {"nodes": {n["unique_id"]: n for n in nodes}}


def test_database_enforced_tests_mirror_the_post_hooks_and_indexes():
    keyed = _model(
        "keyed",
        indexes=[
            {"columns": ["id"], "unique": True},
            {"columns": ["b", "a"], "unique": True},
            {"columns": ['code collate "C"'], "unique": True},
            {"columns": ["c"]},
        ],
    )
    contract = _model("contracted", "table", contract={"enforced": True})
    contract["columns"] = {"key": {"constraints": [{"type": "primary_key"}]}}
    manifest = _manifest(
        keyed,
        contract,
        _model("a_view", "view"),
        # table columns with a not_null test of severity error are declared NOT NULL
        _test("nn", "not_null", "keyed", "id"),
        _test("nn_a", "not_null", "keyed", "a"),
        _test("nn_b", "not_null", "keyed", "b"),
        _test("nn_warn", "not_null", "keyed", "c", severity="warn"),
        _test("nn_where", "not_null", "keyed", "c", where="c > 0"),
        _test("nn_stored", "not_null", "keyed", "c", store_failures=True),
        _test("nn_quoted", "not_null", "keyed", '"Mixed"'),
        _test("nn_view", "not_null", "a_view", "id"),
        _test("nn_source", "not_null", None, "id"),
        # unique: held by a unique index on exactly that column (a collation is still the column)
        _test("uq", "unique", "keyed", "id", severity="warn"),
        _test("uq_collated", "unique", "keyed", "code"),
        _test("uq_plain_index", "unique", "keyed", "c"),
        _test("uq_pk", "unique", "contracted", "key"),
        _test("uq_where", "unique", "keyed", "id", where="id > 0"),
        # a combination: an index on exactly those columns, all NOT NULL
        _test(
            "combo", "unique_combination_of_columns", "keyed", kwargs={"combination_of_columns": ["a", "b"]}
        ),
        _test(
            "combo_other",
            "unique_combination_of_columns",
            "keyed",
            kwargs={"combination_of_columns": ["a", "c"]},
        ),
        _test(
            "combo_nullable",
            "unique_combination_of_columns",
            "keyed",
            kwargs={"combination_of_columns": ["id", "code"]},
        ),
        # row rules the post-hook makes CHECK constraints
        _test("av", "accepted_values", "keyed", "c", kwargs={"values": ["x", "y"]}),
        _test("av_jinja", "accepted_values", "keyed", "c", kwargs={"values": ["{{ var('v') }}"]}),
        _test("av_empty", "accepted_values", "keyed", "c", kwargs={"values": []}),
        _test("av_warn", "accepted_values", "keyed", "c", kwargs={"values": ["x"]}, severity="warn"),
        _test("expr", "expression_is_true", "keyed", kwargs={"expression": "a <= b"}),
        _test("expr_clock", "expression_is_true", "keyed", kwargs={"expression": "a <= now()"}),
        _test("expr_reads", "expression_is_true", "keyed", kwargs={"expression": "a in (select 1)"}),
        _test("e164", "is_e164", "keyed", "c"),
        _test("uscc", "is_valid_uscc", "keyed", "c"),
        _test("uscc_view", "is_valid_uscc", "a_view", "c"),
        # the rest always scan
        _test("rel", "relationships", "keyed", "a", kwargs={"to": "ref('x')", "field": "id"}),
    )
    assert database_enforced_tests(manifest) == sorted(
        ["nn", "nn_a", "nn_b", "uq", "uq_collated", "uq_pk", "combo", "av", "expr", "e164", "uscc"]
    )
    enforced = database_enforced_tests(manifest)
    assert event_exclusions(manifest) == [UNIT_TESTS, *name_selectors(enforced, manifest)]


def _node(kind: str, name: str, fqn: list[str]) -> dict:
    return {"unique_id": f"{kind}.p.{name}", "name": name, "resource_type": kind, "fqn": fqn}


def _dbt_selects(selector: str, node: dict) -> bool:
    """Whether dbt's own name selector (method fqn) picks ``node``: its fqn with the package, or
    without it (QualifiedNameSelectorMethod.node_is_match)."""
    from dbt.graph.selector_methods import is_selected_node

    fqn = node["fqn"]
    return is_selected_node(fqn, selector, False) or is_selected_node(fqn[1:], selector, False)


def test_name_selectors_match_exactly_the_named_nodes_in_dbt():
    """The prefixes pick every named test and nothing else, by dbt's own matching; a prefix another
    node's name (in any case) or qualified name starts with is never used."""
    wanted = [
        "not_null_orders_id",
        "not_null_orders_amount",
        "not_null_order_lines_id",
        "unique_orders_id",
        "unique_items_id",
        "accepted_values_orders_rate__1.5",
        "is_e164_people_[mobile]",
    ]
    nodes = [
        *[_node("test", n, ["p", "marts", n]) for n in wanted],
        # tests that stay: one model's other not_null test, a longer name holding a wanted one
        _node("test", "not_null_order_lines_qty", ["p", "marts", "not_null_order_lines_qty"]),
        _node("test", "unique_items_id_v2", ["p", "marts", "unique_items_id_v2"]),
        _node("test", "relationships_orders_customer_id", ["p", "marts", "relationships_orders_customer_id"]),
        # other kinds of node: a model named like a test, in upper case; a source
        _node("model", "IS_E164_PEOPLE_X", ["p", "marts", "IS_E164_PEOPLE_X"]),
        _node("model", "orders", ["p", "marts", "orders"]),
    ]
    source = _node("source", "not_null_raw", ["p", "raw", "not_null_raw"])
    manifest = {"nodes": {n["unique_id"]: n for n in nodes}, "sources": {source["unique_id"]: source}}
    selectors = name_selectors(wanted, manifest)
    assert selectors == [
        "accepted_*",
        "is_e164_people_[mobile]",
        "not_null_order_lines_id",
        "not_null_orders_*",
        "unique_items_id",
        "unique_orders_*",
    ]
    for node in [*nodes, source]:
        picked = any(_dbt_selects(selector, node) for selector in selectors)
        assert picked == (node["name"] in wanted), node["name"]
    assert name_selectors([], manifest) == []
