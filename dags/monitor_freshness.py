"""Pipeline monitoring: freshness, volumes, pushes, data checks, one health view, alerts.

Every 15 minutes:

1. ``dbt_source_freshness`` runs ``dbt source freshness`` (every source's ``loaded_at_field``
   against the registry's SLA) and appends the results to ``ops.freshness_checks``
   (``checked_by = 'dbt'``); ``check_sources`` records the warehouse's own check next to it.
2. ``evaluate_health`` refreshes the monitoring tables and views (thresholds from
   ``include/registry/monitoring.yaml``, SLAs from the source registry), measures the end-to-end
   latency of new sync runs (``push_flows``, per flow and target), reads
   ``monitoring.pipeline_health_checks`` and alerts on every amber/red check (stale sources,
   volume anomalies, quarantine rates, reject backlogs, outbox age, open conflicts, latency, failed
   data checks), once per state change, with a recovery message when it clears.

Output: ``monitoring.pipeline_health`` (green / amber / red per system), which the BI dashboards
show, and the alerts in the channels of ``monitoring.yaml``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from c360_monitoring import alert_callbacks

from include.config import WAREHOUSE_CONN_ID
from include.tags import OWNER, Layer


@dag(
    dag_id="monitor_freshness",
    description="Freshness (dbt and warehouse), health view, anomaly and backlog alerts",
    schedule="*/15 * * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.MONITOR.value],
    default_args={
        "owner": OWNER,
        "retries": 2,
        "retry_delay": timedelta(minutes=1),
        **alert_callbacks(),
    },
)
def monitor_freshness():
    @task
    def dbt_source_freshness() -> dict[str, int]:
        import psycopg

        from include.config import connection_url
        from include.monitoring.dbt_freshness import record_dbt_freshness, run_dbt_source_freshness

        warehouse = connection_url(WAREHOUSE_CONN_ID)
        results = run_dbt_source_freshness(warehouse)
        with psycopg.connect(warehouse) as conn:
            record_dbt_freshness(conn, results)
        counts: dict[str, int] = {}
        for r in results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @task
    def check_sources() -> list[str]:
        import psycopg

        from include.config import connection_url
        from include.monitoring.freshness import check_freshness
        from include.registry import load_sources

        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            results = check_freshness(conn, load_sources())
        return [r.describe() for r in results]

    @task
    def evaluate_health(ti=None) -> dict[str, str]:
        import psycopg

        from include.config import connection_url
        from include.monitoring.alerts import alert_on_health
        from include.monitoring.health import ensure_monitoring, measure_push_latency, pipeline_health
        from include.monitoring.settings import load_monitoring
        from include.registry import load_sources

        settings = load_monitoring()
        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            ensure_monitoring(conn, settings, load_sources())
            measure_push_latency(conn)
            sent = alert_on_health(conn, settings, link=ti.log_url)
            health = pipeline_health(conn)
        for key, transition in sent.items():
            print(f"alert {transition}: {key}")
        return {system: f"{row['status']}: {row['summary']}" for system, row in health.items()}

    [dbt_source_freshness(), check_sources()] >> evaluate_health()


monitor_freshness()
