"""DAG integrity: every DAG imports, is tagged, owned and retried, and parsing touches no database."""

from __future__ import annotations

from include.registry import load_sources
from include.tags import Layer


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}


def test_expected_dags(dagbag):
    expected = {f"extract_{s.name}" for s in load_sources()} | {
        "dbt_customer_360",
        "push_flows",
        "monitor_freshness",
        "refresh_bi",
        "c360_batch_cycle",
    }
    assert expected <= set(dagbag.dag_ids)


def _dags(dagbag):
    return sorted(dagbag.dags.values(), key=lambda d: d.dag_id)


def test_every_dag_has_a_layer_tag(dagbag):
    layers = {layer.value for layer in Layer}
    for dag in _dags(dagbag):
        assert len(set(dag.tags) & layers) == 1, f"{dag.dag_id} has tags {dag.tags}"


def test_extract_dags_are_tagged_with_their_source(dagbag):
    for source in load_sources():
        dag = dagbag.dags[f"extract_{source.name}"]
        assert f"source:{source.name}" in dag.tags
        assert {f"extract_{e.name}" for e in source.entities} <= set(dag.task_ids)


def test_owner_retries_and_docs(dagbag):
    for dag in _dags(dagbag):
        assert dag.doc_md and len(dag.doc_md) > 100, f"{dag.dag_id} is not documented"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag.dag_id}.{task.task_id} has no real owner"
            assert task.retries >= 2, f"{dag.dag_id}.{task.task_id} retries={task.retries}"


def test_dbt_dag_builds_and_tests_each_model_in_its_own_task(dagbag):
    dag = dagbag.dags["dbt_customer_360"]
    for model in ("dim_customer", "customer_crosswalk", "stg_crm__accounts", "customer_360"):
        assert f"dbt.{model}_model_build" in dag.task_ids, model
    # a test over two models (relationships) runs after both, in a task of its own
    detached = [t for t in dag.task_ids if "relationships" in t]
    assert detached, "multi-parent tests are detached into their own tasks"


def _asset_names(condition) -> set[str]:
    """Every Asset name in a schedule's asset expression (``a | b``, ``[a, b]``, ``a & b``)."""
    if hasattr(condition, "objects"):
        return set().union(*(_asset_names(o) for o in condition.objects))
    return {condition.name}


def test_assets_tie_producers_to_consumers(dagbag):
    from include.assets import DIM_CUSTOMER, raw_asset

    dbt_dag = dagbag.dags["dbt_customer_360"]
    assert _asset_names(dbt_dag.timetable.asset_condition) == {raw_asset(s.name).name for s in load_sources()}
    for source in load_sources():
        outlets = {o.name for t in dagbag.dags[f"extract_{source.name}"].tasks for o in t.outlets}
        assert outlets == {raw_asset(source.name).name}
    assert DIM_CUSTOMER.name in {o.name for t in dbt_dag.tasks for o in t.outlets}
    assert DIM_CUSTOMER.name in _asset_names(dagbag.dags["push_flows"].timetable.asset_condition)


def test_every_task_alerts_on_failure_and_recovery(dagbag):
    from c360_monitoring import on_task_failure, on_task_success

    for dag in _dags(dagbag):
        for task in dag.tasks:
            assert on_task_failure in (task.on_failure_callback or []), f"{dag.dag_id}.{task.task_id}"
            assert on_task_success in (task.on_success_callback or []), f"{dag.dag_id}.{task.task_id}"


def test_sensors_reschedule_with_a_timeout(dagbag):
    from airflow.sdk import BaseSensorOperator

    sensors = [t for d in _dags(dagbag) for t in d.tasks if isinstance(t, BaseSensorOperator)]
    assert sensors
    for sensor in sensors:
        assert sensor.mode == "reschedule" or getattr(sensor, "deferrable", False), sensor.task_id
        assert 0 < sensor.timeout <= 24 * 3600, sensor.task_id


def _gate_upstreams(dag, task_id: str) -> set[str]:
    return {t for t in dag.get_task(task_id).upstream_task_ids if t.startswith("wait_for_")}


def test_push_and_bi_refresh_wait_only_on_what_they_read(dagbag):
    from include.monitoring.settings import load_monitoring
    from include.push.targets import load_targets

    gates = load_monitoring().gates
    push = dagbag.dags["push_flows"]
    for flow in load_targets().flows:
        plan = f"{flow.name}.plan"
        waits = {t for t in push.get_task(plan).upstream_task_ids if ".wait_for_" in t}
        assert waits == {f"{flow.name}.wait_for_source_{s}" for s in flow.reads_sources} | {
            f"{flow.name}.wait_for_mart_{m.replace('.', '__')}" for m in flow.triggers
        }, flow.name
    # the CRM contacts flow waits on the CRM only: a late OA extract does not hold it
    assert "crm_golden_contacts.wait_for_source_oa" not in push.task_ids
    bi = dagbag.dags["refresh_bi"]
    assert _gate_upstreams(bi, "refresh") == {f"wait_for_source_{s.name}" for s in load_sources()} | {
        f"wait_for_mart_{m.replace('.', '__')}" for m in gates["refresh_bi"].marts
    }


def test_marts_are_published_only_after_their_data_checks(dagbag):
    dag = dagbag.dags["dbt_customer_360"]
    assert dag.get_task("publish_marts").upstream_task_ids == {"check_marts"}
    assert any(t.startswith("dbt.") for t in dag.get_task("check_marts").upstream_task_ids)


def test_refresh_bi_has_a_deadline_alert(dagbag):
    (deadline,) = dagbag.dags["refresh_bi"].deadline
    assert deadline.callback.path == "c360_monitoring.callbacks.on_deadline_missed"


def test_push_dag_has_a_task_group_per_flow_and_a_send_per_target(dagbag):
    from include.push.targets import load_targets

    dag = dagbag.dags["push_flows"]
    registry = load_targets()
    for flow in registry.flows:
        assert {f"{flow.name}.plan", f"{flow.name}.finish"} <= set(dag.task_ids)
        for target in flow.targets:
            send = dag.get_task(f"{flow.name}.send_{target}")
            assert send.pool == registry.target(target).pool
            assert f"{flow.name}.plan" in send.upstream_task_ids


def test_batch_cycle_extracts_everything_then_builds_checks_and_pushes_every_flow(dagbag):
    from include.push.targets import load_targets

    dag = dagbag.dags["c360_batch_cycle"]
    assert (
        type(dag.timetable).__name__ == "NullTimetable"
    )  # manual: the Asset-driven DAGs are the steady state
    extracts = {f"extract.{s.name}__{e.name}" for s in load_sources() for e in s.entities}
    assert dag.get_task("dbt_build").upstream_task_ids == extracts
    assert dag.get_task("dbt_build").select is None  # the whole project
    assert dag.get_task("check_marts").upstream_task_ids == {"dbt_build"}
    for flow in load_targets().flows:
        assert dag.get_task(f"{flow.name}.plan").upstream_task_ids == {"check_marts"}
        assert {f"{flow.name}.send_{t}" for t in flow.targets} <= dag.get_task(
            f"{flow.name}.finish"
        ).upstream_task_ids
    # it starts nothing else: no Assets out
    assert not [t.task_id for t in dag.tasks if t.outlets]


def test_every_dbt_task_runs_in_the_dbt_pool(dagbag):
    from cosmos.operators.base import AbstractDbtBase

    from include.config import DBT_POOL

    dbt_tasks = [(d.dag_id, t) for d in _dags(dagbag) for t in d.tasks if isinstance(t, AbstractDbtBase)]
    assert {"dbt_event_build", "dbt_build"} <= {t.task_id for _, t in dbt_tasks}
    for dag_id, task in dbt_tasks:
        assert task.pool == DBT_POOL, f"{dag_id}.{task.task_id} runs in {task.pool}"
