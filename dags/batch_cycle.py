"""Batch cycle: the whole pipeline in one DAG run: extract every source, build, check, push.

For a demo, a first load or a catch-up after an outage, when one run should say whether the whole
cycle works: every entity of every source of the registry is extracted (incremental or full, as
a scheduled run would), then one ``dbt build`` of the whole project (each model, then its tests,
in DAG order), the data checks on the marts, and every flow of the target registry (plan, send per
target, finish), as ``push_flows`` would after a batch build.

Manual only (``schedule=None``): the scheduled extracts and the Asset-driven ``dbt_customer_360``
and ``push_flows`` are the steady state. It emits no Assets, so it starts nothing else; do not run it
while ``dbt_customer_360`` is running (both rebuild the same tables).

Params: ``dry_run`` (plan and report what would be sent, send nothing) and ``max_records``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, TaskGroup, dag, task
from c360_monitoring import alert_callbacks
from cosmos import settings as cosmos_settings
from cosmos.constants import InvocationMode
from cosmos.operators.local import DbtBuildLocalOperator

from include.config import DBT_POOL, DBT_PROJECT_DIR
from include.dbt_profile import warehouse_profile
from include.push.targets import load_targets
from include.registry import load_sources
from include.tags import OWNER, Layer

REGISTRY = load_targets()


@dag(
    dag_id="c360_batch_cycle",
    description="The whole cycle in one run: extract all sources, dbt build, data checks, every push flow",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.CYCLE.value],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1), **alert_callbacks()},
    params={
        "dry_run": Param(False, type="boolean", description="report what would be sent; send nothing"),
        "max_records": Param(None, type=["null", "integer"], minimum=1, description="cap per target"),
    },
)
def c360_batch_cycle():
    @task
    def extract(source_name: str, entity_name: str, dag_run=None) -> dict:
        from include.extract.task import extract_task

        return extract_task(source_name, entity_name, dag_run.run_id)

    with TaskGroup(group_id="extract") as extracted:
        for source in load_sources():
            for entity in source.entities:
                extract.override(task_id=f"{source.name}__{entity.name}", pool=source.pool or "default_pool")(
                    source.name, entity.name
                )

    build = DbtBuildLocalOperator(
        task_id="dbt_build",
        project_dir=DBT_PROJECT_DIR,
        profile_config=warehouse_profile(),
        invocation_mode=InvocationMode.DBT_RUNNER,
        install_deps=False,
        pool=DBT_POOL,
        cache_dir=cosmos_settings.cache_dir / "c360_batch_cycle__dbt_build",  # partial parsing between runs
    )

    @task
    def check_marts() -> dict:
        """A failed data check stops the cycle before anything is pushed."""
        from include.config import WAREHOUSE_CONN_ID, connection_url
        from include.monitoring.data_checks import check_marts as run_checks

        return run_checks(connection_url(WAREHOUSE_CONN_ID))

    @task
    def plan(flow_name: str, params: dict | None = None) -> dict:
        from include.push.runner import plan_task

        return plan_task(flow_name, bool((params or {}).get("dry_run")))

    @task
    def send(flow_name: str, target_name: str, planned: dict, params: dict | None = None) -> dict:
        from include.push.runner import send_task

        return send_task(flow_name, target_name, planned, (params or {}).get("max_records"))

    @task(trigger_rule="all_done")
    def finish(flow_name: str, planned: dict) -> dict:
        from include.push.runner import finish_task

        return finish_task(flow_name, planned)

    checked = check_marts()
    extracted >> build >> checked
    for flow in REGISTRY.flows:
        with TaskGroup(group_id=flow.name, tooltip=flow.label):
            planned = plan.override(task_id="plan")(flow.name)
            checked >> planned
            sends = [
                send.override(task_id=f"send_{t}", pool=REGISTRY.target(t).pool)(flow.name, t, planned)
                for t in flow.targets
            ]
            sends >> finish.override(task_id="finish")(flow.name, planned)


c360_batch_cycle()
