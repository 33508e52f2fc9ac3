"""Event mode's wiring, as the scheduler sees it (serialized DAGs): a call-center change message
starts extract_callcenter, whose Asset starts dbt_customer_360, whose event-mode marts start
push_flows; and the event-mode dbt build and push selection cover what the CRM flow reads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from include.assets import raw_asset
from include.config import DBT_PROJECT_DIR
from include.event_mode import BATCH, EVENT, UNIT_TESTS, database_enforced_tests
from include.push.targets import load_targets
from include.registry import get_source


@pytest.fixture(scope="module")
def serialized(dagbag):
    """Every DAG after a round trip through Airflow's serialization (what the scheduler reads)."""
    from airflow.serialization.serialized_objects import DagSerialization

    return {
        dag_id: DagSerialization.from_dict(DagSerialization.to_dict(dag))
        for dag_id, dag in dagbag.dags.items()
    }


def _assets(condition) -> set[tuple[str, str]]:
    """(name, uri) of every Asset in a schedule's asset condition."""
    if hasattr(condition, "objects"):
        return set().union(*(_assets(o) for o in condition.objects))
    return {(condition.name, condition.uri)}


def _outlets(dag, task_id: str) -> set[tuple[str, str]]:
    return {(o.name, o.uri) for o in dag.get_task(task_id).outlets}


def _key(asset) -> tuple[str, str]:
    return (asset.name, asset.uri)


def test_change_message_starts_the_callcenter_extract(serialized):
    condition = serialized["extract_callcenter"].timetable.asset_condition
    watchers = [w for o in getattr(condition, "objects", [condition]) for w in getattr(o, "watchers", [])]
    (watcher,) = watchers
    assert watcher.trigger["kwargs"]["channels"] == [get_source("callcenter").events.redis_channel]
    assert watcher.trigger["kwargs"]["redis_conn_id"] == "c360_events"


def test_asset_graph_connects_callcenter_extract_dbt_and_push(serialized):
    extract, dbt, push = (serialized[d] for d in ("extract_callcenter", "dbt_customer_360", "push_flows"))
    raw = _key(raw_asset("callcenter"))
    assert _outlets(extract, "publish") == {raw}
    assert raw in _assets(dbt.timetable.asset_condition)
    # push_flows needs every Asset of its schedule (all of them) updated: each one must be emitted
    # by the task that publishes after an event-mode build, not only after a batch build
    needed = _assets(push.timetable.asset_condition)
    assert needed, "push_flows is scheduled on the marts"
    assert needed <= _outlets(dbt, "publish_marts")
    batch_only = _outlets(dbt, "publish_batch_marts")
    assert not needed & batch_only, "push_flows would never start after an event-mode build"
    # every flow's triggers are among them
    assert {m for f in load_targets().flows for m in f.triggers} == {name for name, _ in needed}


def _run(dagbag, dag_id: str, task_id: str, **context):
    """Call a task's Python callable as Airflow would, with the context it reads."""
    return dagbag.dags[dag_id].get_task(task_id).python_callable(**context)


def _triggered_by(*extras: dict) -> dict:
    return {"asset": [SimpleNamespace(extra=x) for x in extras]}


class _TI:
    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value


def test_dbt_builds_everything_unless_only_change_messages_triggered_it(dagbag):
    dag = dagbag.dags["dbt_customer_360"]
    roots = _run(dagbag, "dbt_customer_360", "choose_build", triggering_asset_events={}, ti=_TI())
    assert roots and all(r.startswith("dbt.") for r in roots)
    assert set(roots) == {t for t in dag.get_task("choose_build").downstream_task_ids if t.startswith("dbt.")}
    mixed = _triggered_by({"mode": EVENT, "source": "callcenter"}, {"mode": BATCH, "source": "erp"})
    assert _run(dagbag, "dbt_customer_360", "choose_build", triggering_asset_events=mixed, ti=_TI()) == roots


def _dbt_ls(*args: str) -> list[dict]:
    """`dbt ls` of the project, one dict per node (name, resource_type)."""
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "ls",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--output",
            "json",
            "--output-keys",
            "name resource_type",
            "--quiet",
            *args,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def callcenter_event_build(dagbag) -> _TI:
    """choose_build's XComs after a call-center change: the event-mode build's selection and exclusions."""
    ti = _TI()
    event = _triggered_by({"mode": EVENT, "source": "callcenter", "entities": {}})
    assert _run(dagbag, "dbt_customer_360", "choose_build", triggering_asset_events=event, ti=ti) == [
        "dbt_event_build"
    ]
    return ti


@pytest.fixture(scope="module")
def callcenter_event_models(callcenter_event_build) -> set[str]:
    """The models dbt selects for the event-mode build after a call-center change (real `dbt ls`)."""
    select = callcenter_event_build.xcom["event_select"].split()
    return {n["name"] for n in _dbt_ls("--resource-type", "model", "--select", *select)}


def test_event_build_leaves_out_only_tests_no_landed_data_can_fail(callcenter_event_build):
    """Unit tests and the data tests the database enforces are left out (real `dbt ls`, as the
    operator selects: cautious); the tests that read the data stay."""
    select = callcenter_event_build.xcom["event_select"].split()
    exclude = callcenter_event_build.xcom["event_exclude"].split()
    assert exclude[0] == "resource_type:unit_test"
    tests = ["--resource-type", "test", "--resource-type", "unit_test", "--indirect-selection", "cautious"]
    every = _dbt_ls(*tests, "--select", *select)
    kept = _dbt_ls(*tests, "--select", *select, "--exclude", *exclude)
    left_out = {n["name"] for n in every} - {n["name"] for n in kept}
    assert {n["name"] for n in every if n["resource_type"] == "unit_test"} <= left_out
    assert not any(n["resource_type"] == "unit_test" for n in kept)
    assert "not_null_int_customer_records_customer_record_id" in left_out
    assert {n["name"] for n in kept if n["resource_type"] == "test"} and all(
        not n["name"].startswith(("not_null_int_", "unique_int_")) for n in kept
    )
    # the relationships tests between the identity models read data: they stay
    assert any(n["name"].startswith("relationships_int_identity_edges_") for n in kept)
    # the exclusions are name prefixes (include/event_mode.py, name_selectors): they leave out
    # exactly what the enforced tests' names do
    assert len(exclude) < 100
    manifest = json.loads((DBT_PROJECT_DIR / "target" / "manifest.json").read_text())
    names = [UNIT_TESTS, *database_enforced_tests(manifest)]
    assert kept == _dbt_ls(*tests, "--select", *select, "--exclude", *names)


def test_event_build_covers_what_the_crm_flow_reads(callcenter_event_models):
    crm_flow = load_targets().flow("crm_golden_contacts")
    # the marts the CRM flow's plan reads (its triggers), and the way from the caller to them
    assert {m.split(".", 1)[1] for m in crm_flow.triggers} <= callcenter_event_models
    assert {
        "stg_callcenter__callers",
        "int_customer_records",
        "int_golden_attributes",
    } <= callcenter_event_models
    # not the whole project: nothing the call center does not feed, nothing the push does not read
    assert "stg_crm__accounts" not in callcenter_event_models
    assert not {"customer_360", "customer_alerts", "customer_segments"} & callcenter_event_models


def test_event_push_runs_the_flows_reacting_to_the_changed_source(dagbag):
    from airflow.sdk.exceptions import AirflowSkipException

    assert {f.name for f in load_targets().event_flows({"callcenter"})} == {
        "crm_golden_contacts",
        "callcenter_contact_changes",
    }
    event = _triggered_by({"mode": EVENT, "sources": ["callcenter"], "rows": 1})
    batch = _triggered_by({"mode": BATCH, "rows": 1})
    # event mode: no flow's task group runs; event_push does the selected flows in one task
    assert _run(dagbag, "push_flows", "batch_mode", triggering_asset_events=event) is False
    assert _run(dagbag, "push_flows", "batch_mode", triggering_asset_events=batch) is True
    with pytest.raises(AirflowSkipException):
        _run(dagbag, "push_flows", "event_push", triggering_asset_events=batch, params={})
    push = dagbag.dags["push_flows"]
    gate = push.get_task("batch_mode")
    # nothing of a skipped group runs, not even its gates or finish
    assert gate.ignore_downstream_trigger_rules and not gate.upstream_task_ids
    for flow in load_targets().flows:
        group = [push.get_task(t) for t in push.task_ids if t.startswith(f"{flow.name}.")]
        firsts = [t for t in group if not any(u.startswith(f"{flow.name}.") for u in t.upstream_task_ids)]
        assert firsts and all(t.upstream_task_ids == {"batch_mode"} for t in firsts), flow.name
    assert not push.get_task("event_push").upstream_task_ids


class _Outlets(dict):
    def __missing__(self, asset):
        self[asset] = SimpleNamespace(extra=None)
        return self[asset]


def test_event_extract_that_landed_nothing_new_starts_nothing(dagbag):
    from airflow.sdk.exceptions import AirflowSkipException

    message = _triggered_by({"from_trigger": True, "payload": {"data": "{}"}})
    nothing = [
        {"entity": e, "received": 1, "inserted": 0, "duplicates": 1, "quarantined": 0} for e in ("a", "b")
    ]
    with pytest.raises(AirflowSkipException):  # the second message of one change: already landed
        _run(
            dagbag,
            "extract_callcenter",
            "publish",
            results=nothing,
            outlet_events=_Outlets(),
            triggering_asset_events=message,
        )
    landed = [{**nothing[0], "inserted": 1}, nothing[1]]
    outlets = _Outlets()
    extra = _run(
        dagbag,
        "extract_callcenter",
        "publish",
        results=landed,
        outlet_events=outlets,
        triggering_asset_events=message,
    )
    assert extra["mode"] == EVENT and extra["source"] == "callcenter"
    assert outlets[raw_asset("callcenter")].extra == extra
    # a scheduled run always tells dbt it ran (its figures feed the monitoring)
    batch = _run(
        dagbag,
        "extract_callcenter",
        "publish",
        results=nothing,
        outlet_events=_Outlets(),
        triggering_asset_events={},
    )
    assert batch["mode"] == BATCH
