"""BI refresh: republish what the dashboards show, only from fresh data.

Runs when the dbt DAG publishes the customer marts: after every batch build, and after an
event-mode build (change messages) only when the last refresh is older than
``bi_event_refresh_min_interval_minutes`` (``due``; else the run is skipped). One freshness sensor
per upstream (every source the dashboards read and the marts, as listed under ``gates.refresh_bi``
in ``include/registry/monitoring.yaml``) waits in ``reschedule`` mode, with a timeout, until that
upstream is within its SLA; a late or failed extract holds the refresh and raises an alert instead
of showing stale numbers. Then every materialized view in the BI schema is refreshed and the "data
as of" time the dashboards display is recorded in ``monitoring.bi_refreshes``; the DAG emits the
``bi.dashboards`` Asset. Last, ``write_dashboards`` regenerates the self-contained HTML dashboards
(big-screen overview and customer 360, ``include/bi``) from the refreshed BI schema
(``C360_DASHBOARD_SCHEMA``, default ``bi``) into ``<data dir>/dashboards/``, stamped with that
"data as of" time.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from c360_monitoring import alert_callbacks, deadline_alert, freshness_gates

from include.assets import BI_DASHBOARDS, CUSTOMER_CROSSWALK, DIM_CUSTOMER
from include.config import WAREHOUSE_CONN_ID
from include.monitoring.settings import load_monitoring
from include.tags import OWNER, Layer

GATE = load_monitoring().gate("refresh_bi")


@dag(
    dag_id="refresh_bi",
    description="Refresh the BI layer and its 'data as of' once every upstream is fresh",
    schedule=[DIM_CUSTOMER, CUSTOMER_CROSSWALK],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.PUBLISH.value],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2), **alert_callbacks()},
    deadline=deadline_alert(timedelta(hours=3), "dashboards are showing data older than the marts"),
)
def refresh_bi():
    @task.short_circuit
    def due(triggering_asset_events=None) -> bool:
        """Batch build: refresh. Event-mode build: only if the last refresh is old enough."""
        from datetime import timedelta

        import psycopg

        from include.config import connection_url
        from include.event_mode import changed_sources, event_extras
        from include.monitoring.bi import refresh_due

        if changed_sources(event_extras(triggering_asset_events)) is None:
            return True
        interval = timedelta(minutes=load_monitoring().bi_event_refresh_min_interval_minutes)
        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            return refresh_due(conn, interval)

    @task(outlets=[BI_DASHBOARDS])
    def refresh(outlet_events=None) -> dict:
        import psycopg

        from include.config import connection_url
        from include.monitoring.bi import refresh_bi as refresh_views

        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            result = refresh_views(conn, GATE.sources)
        figures = {
            "data_as_of": result.data_as_of.isoformat() if result.data_as_of else None,
            "views": result.views,
            "duration_s": round(result.duration_s, 3),
        }
        outlet_events[BI_DASHBOARDS].extra = figures
        return figures

    @task
    def write_dashboards(figures: dict) -> dict:
        from datetime import datetime

        import psycopg

        from include.bi.dashboards import dashboard_relations
        from include.bi.dashboards import write_dashboards as write_pages
        from include.config import connection_url

        as_of = datetime.fromisoformat(figures["data_as_of"]) if figures["data_as_of"] else None
        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            build = write_pages(conn, relations=dashboard_relations(), as_of_time=as_of)
        return {
            "pages": {name: str(path) for name, path in build.pages.items()},
            "customers_embedded": build.customers_embedded,
            "customers_total": build.customers_total,
        }

    gates = freshness_gates("refresh_bi")
    due() >> gates
    write_dashboards(gates >> refresh())


refresh_bi()
