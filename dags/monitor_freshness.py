"""Source freshness: is every raw table within its SLA from the source registry?

Checks the newest ``_loaded_at`` of every raw table against the registry's warn/error thresholds,
records each result in ``ops.freshness_checks`` (the history behind latency and SLA figures) and
fails, so Airflow's alerting fires, when any source is past its error threshold.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task

from include.config import WAREHOUSE_CONN_ID
from include.tags import OWNER, Layer


@dag(
    dag_id="monitor_freshness",
    description="Check every raw table against its source's freshness SLA",
    schedule="15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.MONITOR.value],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=1)},
)
def monitor_freshness():
    @task
    def check_sources() -> list[str]:
        import psycopg

        from include.config import connection_url
        from include.monitoring.freshness import check_freshness
        from include.registry import load_sources

        warehouse = connection_url(WAREHOUSE_CONN_ID)
        with psycopg.connect(warehouse) as conn:
            results = check_freshness(conn, load_sources())
        stale = [r.describe() for r in results if r.status == "error"]
        if stale:
            raise RuntimeError("sources past their freshness SLA: " + "; ".join(stale))
        return [r.describe() for r in results]

    check_sources()


monitor_freshness()
