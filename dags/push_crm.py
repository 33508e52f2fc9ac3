"""Push golden records back to the CRM: change it in one place, and the CRM follows.

Runs when the dbt DAG has rebuilt and tested ``marts.dim_customer``, once the freshness sensors
see the CRM's last extract within its SLA and the marts freshly built and checked. For every CRM account it
compares the customer's golden phone and email with the CRM's own current values and sends only
the fields that differ, in batches, through the CRM's bulk-upsert API (rate-limited, retried on
429/5xx). Every call lands in ``ops.push_log``, every run in ``ops.push_runs``; rejected changes
stay in the plan and are retried by the next run.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import dag, task
from c360_monitoring import alert_callbacks, freshness_gates

from include.assets import DIM_CUSTOMER
from include.config import WAREHOUSE_CONN_ID
from include.registry import get_source
from include.tags import OWNER, Layer, target_tag

CRM = get_source("crm")


@dag(
    dag_id="push_crm",
    description="Send changed golden phone/email values back to the CRM accounts",
    schedule=[DIM_CUSTOMER],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=[Layer.PUSH.value, target_tag("crm")],
    default_args={"owner": OWNER, "retries": 2, "retry_delay": timedelta(minutes=2), **alert_callbacks()},
)
def push_crm():
    @task(pool=CRM.pool or "default_pool")
    def push_accounts() -> dict:
        import psycopg
        from airflow.sdk import BaseHook

        from include.config import connection_url
        from include.extract.http_api import make_client
        from include.push.crm import push_crm_accounts

        api = BaseHook.get_connection(CRM.conn_id)
        warehouse = connection_url(WAREHOUSE_CONN_ID)
        with (
            psycopg.connect(warehouse) as conn,
            make_client(f"{api.schema or 'http'}://{api.host}:{api.port}", api.password) as client,
        ):
            run = push_crm_accounts(conn, client)
        if run.sent and run.rejected == run.sent:
            raise RuntimeError(f"the CRM rejected every change of run {run.run_id}: {run.rejections[:5]}")
        return run.as_dict()

    # nothing is pushed from stale data: wait for the CRM's own extract and the marts (monitoring.yaml)
    freshness_gates("push_crm") >> push_accounts()


push_crm()
