"""BI refresh: republish what the dashboards show, only from fresh data.

Runs when the dbt DAG publishes the customer marts. One freshness sensor per upstream (every
source the dashboards read and the marts, as listed under ``gates.refresh_bi`` in
``include/registry/monitoring.yaml``) waits in ``reschedule`` mode, with a timeout, until that
upstream is within its SLA; a late or failed extract holds the refresh and raises an alert
instead of showing stale numbers. Then every materialized view in the BI schema is refreshed and
the "data as of" time the dashboards display is recorded in ``monitoring.bi_refreshes``; the DAG
emits the ``bi.dashboards`` Asset.
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

    freshness_gates("refresh_bi") >> refresh()


refresh_bi()
