"""Tests where PostgreSQL enforces the property (dbt_project/macros/enforced_tests.sql).

A `unique` / `unique_combination_of_columns` / `not_null` test on a column the database enforces,
and a row test (accepted_values, expression_is_true, is_e164, is_valid_uscc) the table holds as a
CHECK constraint, checks the catalog instead of scanning the table: it must still fail when the
index, the NOT NULL or the constraint is gone, and every other case must keep the scanning query,
which finds the bad rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from include.event_mode import UNFIT_EXPRESSION, database_enforced_tests
from tests.dbt.conftest import DbtWarehouse, run_dbt

SCHEMA = "enforced_probe"

#: test name -> the dispatched test macro's call, on a relation of SCHEMA
CASES = {
    "unique_enforced": "adapter.dispatch('test_unique', 'dbt')(rels.keyed, 'id')",
    "not_null_enforced": "adapter.dispatch('test_not_null', 'dbt')(rels.keyed, 'id')",
    "combination_enforced": "test_unique_combination_of_columns(rels.keyed, ['pair_b', 'pair_a'])",
    "unique_plain": "adapter.dispatch('test_unique', 'dbt')(rels.plain, 'id')",
    "not_null_plain": "adapter.dispatch('test_not_null', 'dbt')(rels.plain, 'id')",
    "combination_nullable": "test_unique_combination_of_columns(rels.plain, ['id', 'note'])",
}
CATALOG_CHECK = "catalog check, no table scan"

#: row test -> (the test macro's call on rels.ruled, row_rule's arguments for its constraint)
ROW_CASES = {
    "accepted_values": (
        "adapter.dispatch('test_accepted_values', 'dbt')(rels.ruled, 'kind', ['a', 'b'])",
        "'accepted_values', 'kind', {'values': ['a', 'b']}",
    ),
    "expression_is_true": (
        "test_expression_is_true(rels.ruled, 'low < high', where_clause='kind is not null')",
        "'expression_is_true', none, {'expression': 'low < high', 'where_clause': 'kind is not null'}",
    ),
    "is_e164": (
        "test_is_e164(rels.ruled, 'mobile', country_prefix='+861')",
        "'is_e164', 'mobile', {'country_prefix': '+861'}",
    ),
    "is_valid_uscc": ("test_is_valid_uscc(rels.ruled, 'uscc')", "'is_valid_uscc', 'uscc', {}"),
}
ROW_CHECK = "row rule enforced by check constraint"
#: a row each test fails on, once its constraint is gone
ROW_BAD = (
    "insert into {schema}.ruled values ('c', 1, 2, null, null), ('a', 2, 1, null, null), "
    "('a', 1, 2, '+8601', null), ('a', 1, 2, null, '91350100M000100Y44')"
)


def compiled_tests(warehouse: DbtWarehouse, tmp: Path, cases: dict[str, str] = CASES) -> dict[str, str]:
    """Each case's test SQL as dbt renders it against the current catalog (one `dbt show`)."""
    rels = (
        "{% set rels = {"
        + ", ".join(
            f"'{name}': api.Relation.create(database=target.database, schema='{SCHEMA}', identifier='{name}')"
            for name in ("keyed", "plain", "ruled")
        )
        + "} %}"
    )
    inline = " union all ".join(
        f"select '{name}' as case_name, $case${{{{ {call} }}}}$case$ as test_sql"
        for name, call in cases.items()
    )
    args = ["show", "--quiet", "--output", "json", "--limit", "-1", "--inline", rels + inline]
    shown = run_dbt(args, warehouse.db, tmp)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-2000:]
    rows = json.loads(shown.stdout[shown.stdout.index("{") :])["show"]
    return {row["case_name"]: row["test_sql"] for row in rows}


def failures(conn: psycopg.Connection, test_sql: str) -> int:
    return len(conn.execute(test_sql).fetchall())


@pytest.fixture
def probe_tables(dbt_warehouse: DbtWarehouse):
    with psycopg.connect(dbt_warehouse.db.url, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade; create schema {SCHEMA}")
        conn.execute(
            f"create table {SCHEMA}.keyed (id int not null, pair_a int not null, pair_b int not null);"
            f"create unique index on {SCHEMA}.keyed (id);"
            f"create unique index on {SCHEMA}.keyed (pair_a, pair_b) include (id);"
            f"insert into {SCHEMA}.keyed values (1, 1, 1), (2, 1, 2);"
            f"create table {SCHEMA}.plain (id int, note text);"
            f"insert into {SCHEMA}.plain values (1, 'a'), (1, 'a'), (null, null), (null, null);"
            f"create table {SCHEMA}.ruled (kind text, low int, high int, mobile text, uscc text);"
            f"insert into {SCHEMA}.ruled values ('a', 1, 2, '+8613800000000', '91350100M000100Y43'),"
            f" (null, 2, 1, null, null);"
        )
        yield conn
        conn.execute(f"drop schema {SCHEMA} cascade")


def test_enforced_properties_are_checked_in_the_catalog_and_the_rest_scanned(
    dbt_warehouse: DbtWarehouse, probe_tables: psycopg.Connection, tmp_path: Path
) -> None:
    conn = probe_tables
    tests = compiled_tests(dbt_warehouse, tmp_path / "first")
    enforced = {name for name, sql in tests.items() if CATALOG_CHECK in sql}
    assert enforced == {"unique_enforced", "not_null_enforced", "combination_enforced"}
    assert {name: failures(conn, sql) for name, sql in tests.items()} == {
        "unique_enforced": 0,
        "not_null_enforced": 0,
        "combination_enforced": 0,
        "unique_plain": 1,  # id 1 twice (nulls are not duplicates to `unique`)
        "not_null_plain": 2,
        # (1, 'a') twice, (null, null) twice: the combination counts nulls as equal
        "combination_nullable": 2,
    }

    # the guarantee goes away: the catalog checks rendered before now fail ...
    conn.execute(
        f"drop index {SCHEMA}.keyed_id_idx; drop index {SCHEMA}.keyed_pair_a_pair_b_id_idx;"
        f"alter table {SCHEMA}.keyed alter column id drop not null;"
        f"insert into {SCHEMA}.keyed values (1, 1, 1), (null, 2, 2)"
    )
    assert all(failures(conn, tests[name]) == 1 for name in enforced)

    # ... and rendered now, the tests scan and find the bad rows
    tests = compiled_tests(dbt_warehouse, tmp_path / "second")
    assert not any(CATALOG_CHECK in sql for sql in tests.values())
    assert failures(conn, tests["unique_enforced"]) == 1
    assert failures(conn, tests["not_null_enforced"]) == 1
    assert failures(conn, tests["combination_enforced"]) == 1


def test_row_rules_held_as_check_constraints_are_checked_in_the_catalog(
    dbt_warehouse: DbtWarehouse, probe_tables: psycopg.Connection, tmp_path: Path
) -> None:
    conn = probe_tables
    calls = {name: call for name, (call, _) in ROW_CASES.items()}
    tests = compiled_tests(dbt_warehouse, tmp_path / "scanned", calls)
    assert not any(ROW_CHECK in sql for sql in tests.values())
    assert {name: failures(conn, sql) for name, sql in tests.items()} == dict.fromkeys(ROW_CASES, 0)

    # the constraints enforce_tested_row_rules() would add, as row_rule() names them
    rules = compiled_tests(
        dbt_warehouse,
        tmp_path / "rules",
        {name: f"tojson(row_rule({args}))" for name, (_, args) in ROW_CASES.items()},
    )
    for rule in map(json.loads, rules.values()):
        conn.execute(f'alter table {SCHEMA}.ruled add constraint "{rule["name"]}" check ({rule["check"]})')
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(ROW_BAD.format(schema=SCHEMA))

    tests = compiled_tests(dbt_warehouse, tmp_path / "enforced", calls)
    assert all(ROW_CHECK in sql for sql in tests.values())
    assert {name: failures(conn, sql) for name, sql in tests.items()} == dict.fromkeys(ROW_CASES, 0)

    # the constraints go: the catalog checks rendered before fail; rendered now, the tests scan
    conn.execute(
        f"alter table {SCHEMA}.ruled "
        + ", ".join(f'drop constraint "{json.loads(rule)["name"]}"' for rule in rules.values())
    )
    conn.execute(ROW_BAD.format(schema=SCHEMA))
    assert {name: failures(conn, sql) for name, sql in tests.items()} == dict.fromkeys(ROW_CASES, 1)
    tests = compiled_tests(dbt_warehouse, tmp_path / "rescanned", calls)
    assert not any(ROW_CHECK in sql for sql in tests.values())
    assert {name: failures(conn, sql) for name, sql in tests.items()} == dict.fromkeys(ROW_CASES, 1)


def test_tested_columns_of_tables_are_declared_not_null(dbt_warehouse: DbtWarehouse) -> None:
    """The post-hook declared every not_null-tested column of every table NOT NULL, so the build's
    not_null tests on tables were all catalog checks."""
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    nodes = manifest["nodes"]
    tested: list[tuple[str, str, str]] = []
    for node in nodes.values():
        if node["resource_type"] != "test" or (node.get("test_metadata") or {}).get("name") != "not_null":
            continue
        model = nodes.get(node["attached_node"] or "")  # None: a source's test
        table = model and model["config"]["materialized"] in ("table", "incremental")
        if table and not node["config"].get("where"):
            tested.append((model["schema"], model["alias"], node["column_name"]))
    assert len(tested) > 100
    declared = set(
        dbt_warehouse.query(
            "select n.nspname, c.relname, a.attname from pg_attribute as a "
            "join pg_class as c on c.oid = a.attrelid join pg_namespace as n on n.oid = c.relnamespace "
            "where a.attnotnull and a.attnum > 0 and n.nspname = any (%s)",
            (sorted({schema for schema, _, _ in tested}),),
        )
    )
    assert [t for t in tested if t not in declared] == []


def test_row_tests_of_tables_are_check_constraints(dbt_warehouse: DbtWarehouse) -> None:
    """The post-hook added a CHECK constraint for every row test of every table, so those tests, as
    dbt compiled them after the build (docs generate), are catalog checks."""
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    nodes = manifest["nodes"]
    enforced, scanned = [], []
    for node in nodes.values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or meta.get("name") not in (
            "accepted_values",
            "expression_is_true",
            "is_e164",
            "is_valid_uscc",
        ):
            continue
        model = nodes.get(node["attached_node"] or "")
        table = model and model["config"]["materialized"] in ("table", "incremental")
        if not table or node["config"].get("where") or node["config"]["severity"].lower() != "error":
            continue
        expression = f"{meta['kwargs'].get('expression', '')} {meta['kwargs'].get('where_clause') or ''}"
        if meta["name"] == "expression_is_true" and UNFIT_EXPRESSION.search(expression):
            continue
        (enforced if ROW_CHECK in node["compiled_code"] else scanned).append(node["name"])
    assert len(enforced) > 20
    assert scanned == []


def test_event_builds_leave_out_exactly_the_model_tests_compiled_to_catalog_checks(
    dbt_warehouse: DbtWarehouse,
) -> None:
    """The event-mode build's exclusions (include/event_mode.py, database_enforced_tests, from the
    manifest alone) are exactly the model tests dbt compiled to catalog checks after the build: no
    test that scans data is left out, none that only reads the catalog is kept."""
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    compiled = {
        node["name"]: node.get("compiled_code") or ""
        for node in manifest["nodes"].values()
        if node["resource_type"] == "test" and (node.get("attached_node") or "").startswith("model.")
    }
    catalog = {name for name, sql in compiled.items() if CATALOG_CHECK in sql or ROW_CHECK in sql}
    left_out = set(database_enforced_tests(manifest))
    assert len(catalog) > 150
    assert sorted(left_out - catalog) == []
    assert sorted(catalog - left_out) == []
