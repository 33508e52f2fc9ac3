"""dbt: from raw landings to the customer 360 marts, one Airflow task per model.

Runs whenever any source's raw Asset is updated. astronomer-cosmos renders the dbt project
(from its manifest, so parsing is fast and needs no database) into a task per model with the
model's tests right after it; a failing test stops everything downstream of that model.
Then data checks (row-count deltas, null rates, duplicate keys; ``monitoring.data_checks``) run
on the marts. When the marts are built, tested and checked, the DAG emits ``marts.dim_customer`` and
``marts.customer_crosswalk``, which schedule the pushes back to the source systems, and
``marts.customer_360`` and ``marts.customer_alerts`` (customers needing attention today) for BI
refreshes and the alerting work.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from c360_monitoring import alert_callbacks
from cosmos import DbtTaskGroup, ExecutionConfig, ProjectConfig, RenderConfig
from cosmos.constants import InvocationMode, LoadMode, TestBehavior

from include.assets import CUSTOMER_360, CUSTOMER_ALERTS, CUSTOMER_CROSSWALK, DIM_CUSTOMER, raw_asset
from include.config import DBT_PROJECT_DIR
from include.dbt_profile import warehouse_profile
from include.registry import load_sources
from include.tags import OWNER, Layer

_any_source_landed = None
for _source in load_sources():
    _asset = raw_asset(_source.name)
    _any_source_landed = _asset if _any_source_landed is None else (_any_source_landed | _asset)


@dag(
    dag_id="dbt_customer_360",
    description="dbt build: staging, identity resolution, golden records, customer marts",
    schedule=_any_source_landed,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.TRANSFORM.value],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1), **alert_callbacks()},
)
def dbt_customer_360():
    dbt = DbtTaskGroup(
        group_id="dbt",
        project_config=ProjectConfig(
            dbt_project_path=DBT_PROJECT_DIR,
            manifest_path=DBT_PROJECT_DIR / "target" / "manifest.json",
        ),
        profile_config=warehouse_profile(),
        execution_config=ExecutionConfig(invocation_mode=InvocationMode.DBT_RUNNER),
        render_config=RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            # one `dbt build` task per model: the model, then its tests, in one dbt invocation (half
            # the tasks and dbt start-ups of a run task plus a test task per model)
            test_behavior=TestBehavior.BUILD,
            # relationships tests need both models built: run them in their own task after both
            should_detach_multiple_parents_tests=True,
        ),
        operator_args={"install_deps": False},
    )

    published = (DIM_CUSTOMER, CUSTOMER_CROSSWALK, CUSTOMER_360, CUSTOMER_ALERTS)

    @task(outlets=list(published))
    def publish_marts(outlet_events=None) -> dict:
        """Every model and test upstream passed: tell the push and BI DAGs the marts are fresh,
        with their row counts on the Asset events."""
        import psycopg
        from psycopg import sql

        from include.config import WAREHOUSE_CONN_ID, connection_url

        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            counts = {
                asset.name: conn.execute(
                    sql.SQL("select count(*) from {}").format(sql.Identifier(*asset.name.split(".")))
                ).fetchone()[0]
                for asset in published
            }
        for asset in published:
            outlet_events[asset].extra = {"rows": counts[asset.name]}
        return counts

    @task
    def check_marts() -> dict:
        """Row-count deltas, null rates on key fields, duplicate keys (monitoring.yaml); a failed
        check stops the marts from being published, so nothing downstream reads them."""
        import psycopg

        from include.config import WAREHOUSE_CONN_ID, connection_url
        from include.monitoring.data_checks import run_data_checks
        from include.monitoring.settings import load_monitoring

        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            run_id, results = run_data_checks(conn, load_monitoring().data_checks)
        failed = [r.detail for r in results if not r.passed]
        if failed:
            raise RuntimeError(f"data checks {run_id} failed: " + "; ".join(failed))
        return {"run_id": run_id, "checks": len(results)}

    dbt >> check_marts() >> publish_marts()


dbt_customer_360()
