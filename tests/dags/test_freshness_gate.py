"""A late source holds the push and raises an alert; when it recovers, the push goes through.

The real ``push_crm`` DAG runs under ``dag.test()`` against a throwaway warehouse, the sandbox CRM
API on loopback and a local webhook receiver. The CRM's last extract is past its SLA (and OA's
too, which push_crm does not read); the freshness sensor reschedules and alerts; a successful CRM
extract lands; the next poke finds it fresh, sends the recovery, and the push sends the golden
values to the CRM.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from include.monitoring.data_checks import run_data_checks
from include.monitoring.health import ensure_monitoring
from include.monitoring.settings import load_monitoring
from include.registry import load_sources
from include.sandbox.generator import generate
from tests.conftest import create_database, drop_database
from tests.include.conftest import TOKEN, serve, use_data_dir
from tests.receivers import alert_connections, webhook_receiver

GOLDEN = ["+8613900000001", "+8613900000002", "+8613900000003"]


def _pg_conn(url) -> str:
    return json.dumps(
        {"conn_type": "postgres", "host": url.host, "port": url.port, "login": url.user, "schema": url.dbname}
    )


def _extract_run(conn, source: str, entity: str, finished: datetime) -> None:
    conn.execute(
        "insert into ops.extract_runs (run_id, source, entity, sync_mode, rows_read, started_at, "
        "finished_at, status) values (%s, %s, %s, 'incremental', 10, %s, %s, 'success')",
        (f"r-{uuid.uuid4().hex[:8]}", source, entity, finished - timedelta(minutes=1), finished),
    )


def _build_marts(conn, accounts: list[dict]) -> None:
    """The three relations the push plan reads, as dbt would leave them: golden phones differ."""
    conn.execute("create schema staging; create schema marts")
    conn.execute(
        "create table staging.stg_crm__accounts (account_id text, mobile_e164 text, phone_e164 text, "
        "email text)"
    )
    conn.execute(
        "create table marts.customer_crosswalk (source_system text, source_record_id text, "
        "customer_key text, source_updated_at timestamptz)"
    )
    conn.execute(
        "create table marts.dim_customer (customer_key text, customer_type text, customer_name text, "
        "mobile_e164 text, phone_e164 text, email text)"
    )
    for i, (account, phone) in enumerate(zip(accounts, GOLDEN, strict=True)):
        conn.execute(
            "insert into staging.stg_crm__accounts values (%s, null, null, %s)",
            (account["id"], account.get("email")),
        )
        conn.execute(
            "insert into marts.customer_crosswalk values ('crm', %s, %s, now() - interval '1 hour')",
            (account["id"], f"k{i}"),
        )
        conn.execute(
            "insert into marts.dim_customer values (%s, 'company', %s, %s, null, %s)",
            (f"k{i}", account.get("account_name") or "客户", phone, account.get("email")),
        )
    conn.commit()


@pytest.fixture
def crm_api(pg_server, tmp_path, monkeypatch):
    erp = create_database(pg_server, "c360_erp")
    use_data_dir(monkeypatch, tmp_path)
    generate(1000, 11, as_of="2026-01-01", erp_url=erp.url)
    try:
        with serve(tmp_path / "sandbox" / "apps.sqlite") as base_url:
            yield base_url
    finally:
        drop_database(erp)


def test_late_source_holds_the_push_alerts_then_recovers_and_pushes(fresh_db, crm_api, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    now = datetime.now(UTC)
    crm = next(s for s in load_sources() if s.name == "crm")
    with httpx.Client(base_url=crm_api, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        accounts = api.get("/crm/v1/accounts", params={"page_size": 3}).json()["data"]

    with psycopg.connect(fresh_db.url) as conn:
        ensure_monitoring(conn, load_monitoring(), load_sources())
        for source in load_sources():
            # CRM 30 h behind (past its error SLA), OA a month behind: push_crm only reads the CRM
            age = {"crm": timedelta(hours=30), "oa": timedelta(days=30)}.get(
                source.name, timedelta(minutes=5)
            )
            for entity in source.entities:
                _extract_run(conn, source.name, entity.name, now - age)
        conn.commit()
        _build_marts(conn, accounts)
        _, checks = run_data_checks(conn, load_monitoring().data_checks)
        assert all(c.passed for c in checks)

    monkeypatch.setenv("AIRFLOW_CONN_C360_WAREHOUSE", _pg_conn(fresh_db))
    monkeypatch.setenv(
        "AIRFLOW_CONN_C360_CRM_API",
        json.dumps(
            {
                "conn_type": "http",
                "host": "127.0.0.1",
                "port": int(crm_api.rsplit(":", 1)[1]),
                "schema": "http",
                "password": TOKEN,
            }
        ),
    )
    dag = DagBag(dag_folder="dags/push_crm.py").dags["push_crm"]
    sensors = [t for t in dag.tasks if t.task_id.startswith("wait_for_")]
    assert {t.task_id for t in sensors} == {
        "wait_for_source_crm",
        "wait_for_mart_marts__dim_customer",
        "wait_for_mart_marts__customer_crosswalk",
    }
    for sensor in sensors:
        assert sensor.mode == "reschedule"
        sensor.poke_interval = 1  # seconds, for the test; monitoring.yaml says minutes

    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        landed = {}

        def crm_extract_lands_once_the_alert_is_out() -> None:
            deadline = time.monotonic() + 120
            while not hook.received and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(1.5)  # at least one more poke while still stale: no second alert
            with psycopg.connect(fresh_db.url) as conn:
                for entity in crm.entities:
                    _extract_run(conn, "crm", entity.name, datetime.now(UTC))
                conn.commit()
                landed["pushes_before"] = conn.execute("select count(*) from ops.push_runs").fetchone()[0]

        recovery = threading.Thread(target=crm_extract_lands_once_the_alert_is_out, daemon=True)
        recovery.start()
        run = dag.test()
        recovery.join(timeout=5)

    assert str(run.state) == "success"
    assert landed["pushes_before"] == 0  # nothing was pushed while the CRM was stale
    texts = hook.texts()
    assert len(texts) == 2, texts  # one alert, one recovery: the stale pokes in between sent nothing
    assert texts[0].startswith("**[c360 ALERT CRITICAL] source:crm freshness**")
    assert "Holding push_crm" in texts[0] and f"error after {crm.freshness.error_after_hours} h" in texts[0]
    assert "/dags/push_crm/runs/" in texts[0] and "/tasks/wait_for_source_crm" in texts[0]
    assert texts[1].startswith("**[c360 RECOVERED] source:crm freshness**")
    assert "push_crm" in texts[1] and "goes on" in texts[1]
    assert not any("source:oa" in t for t in texts)  # OA is stale but nobody here waits on it

    with psycopg.connect(fresh_db.url) as conn:
        assert conn.execute("select sent, accepted, rejected from ops.push_runs").fetchall() == [(3, 3, 0)]
    with httpx.Client(base_url=crm_api, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        after = {
            a["id"]: a["phone"]
            for a in api.get("/crm/v1/accounts", params={"page_size": 2000}).json()["data"]
        }
    assert [after[a["id"]] for a in accounts] == GOLDEN
