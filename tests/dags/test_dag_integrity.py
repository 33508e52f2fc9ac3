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


def test_dbt_dag_has_a_task_and_a_test_per_model(dagbag):
    dag = dagbag.dags["dbt_customer_360"]
    for model in ("dim_customer", "customer_crosswalk", "stg_crm__accounts"):
        assert f"dbt.{model}.run" in dag.task_ids
        assert f"dbt.{model}.test" in dag.task_ids


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
