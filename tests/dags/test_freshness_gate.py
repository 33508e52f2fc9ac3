"""A late source holds the push and raises an alert; when it recovers, the push goes through.

The ``crm_golden_contacts`` flow of the real ``push_flows`` DAG (its task group and what it waits
on) runs under ``dag.test()`` against a throwaway warehouse, the sandbox CRM API on loopback and a
local webhook receiver. The CRM's last extract is past its SLA (and OA's too, which the flow does
not read: ``reads_sources: [crm]``); the freshness sensor reschedules and alerts; a successful CRM
extract lands; the next poke finds it fresh, sends the recovery, and the flow sends the golden
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

FLOW = "crm_golden_contacts"
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
    """The three relations the flow's planner reads (``include/push/flows.py``), as dbt would
    leave them: the golden phones differ from the CRM's."""
    conn.execute("create schema staging; create schema marts")
    conn.execute(
        "create table staging.stg_crm__accounts (account_id text, mobile_e164 text, phone_e164 text, "
        "email text, source_updated_at timestamptz)"
    )
    conn.execute(
        "create table marts.customer_crosswalk (source_system text, source_record_id text, "
        "customer_key text, source_updated_at timestamptz)"
    )
    conn.execute(
        "create table marts.dim_customer (customer_key text, customer_type text, customer_name text, "
        "mobile_e164 text, phone_e164 text, email text, source_systems text)"
    )
    for i, (account, phone) in enumerate(zip(accounts, GOLDEN, strict=True)):
        email = (account.get("email") or "").strip().lower() or None  # staging standardises it
        conn.execute(
            "insert into staging.stg_crm__accounts values (%s, null, null, %s, %s)",
            (account["id"], email, account["updated_at"]),  # our last read of it
        )
        conn.execute(
            "insert into marts.customer_crosswalk values ('crm', %s, %s, now() - interval '1 hour')",
            (account["id"], f"k{i}"),
        )
        conn.execute(
            "insert into marts.dim_customer values (%s, 'company', %s, %s, null, %s, 'crm')",
            (f"k{i}", account.get("account_name") or "客户", phone, email),
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


def _warehouse_and_crm(fresh_db, crm_api, monkeypatch, ages: dict[str, timedelta]) -> list[dict]:
    """Extract history (every source 5 minutes old unless ``ages`` says otherwise), the marts the
    CRM flow reads, passed data checks, and the Airflow connections; returns the CRM accounts."""
    now = datetime.now(UTC)
    with httpx.Client(base_url=crm_api, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        accounts = api.get("/crm/v1/accounts", params={"page_size": 3}).json()["data"]

    with psycopg.connect(fresh_db.url) as conn:
        ensure_monitoring(conn, load_monitoring(), load_sources())
        for source in load_sources():
            for entity in source.entities:
                age = ages.get(source.name, timedelta(minutes=5))
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
    return accounts


def _assert_golden_pushed_once(fresh_db, crm_api, accounts: list[dict]) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        assert conn.execute("select record_key, error from ops.sync_rejects").fetchall() == []
        assert conn.execute(
            "select flow, sent, succeeded, rejected, status from ops.sync_runs"
        ).fetchall() == [(FLOW, 3, 3, 0, "success")]
    with httpx.Client(base_url=crm_api, headers={"Authorization": f"Bearer {TOKEN}"}) as api:
        after = {
            a["id"]: a["phone"]
            for a in api.get("/crm/v1/accounts", params={"page_size": 2000}).json()["data"]
        }
        keys = api.get("/_admin/idempotency").json()
    assert [after[a["id"]] for a in accounts] == GOLDEN
    assert keys["keys"] == 3 and keys["repeated"] == 0  # each account written once, by its own key


def test_late_source_holds_the_push_alerts_then_recovers_and_pushes(fresh_db, crm_api, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    crm = next(s for s in load_sources() if s.name == "crm")
    # CRM 30 h behind (past its error SLA), OA a month behind: the flow only reads the CRM
    accounts = _warehouse_and_crm(
        fresh_db, crm_api, monkeypatch, {"crm": timedelta(hours=30), "oa": timedelta(days=30)}
    )
    full = DagBag(dag_folder="dags/push_flows.py").dags["push_flows"]
    # the flow's task group and everything upstream of it: nothing of the other flows
    dag = full.partial_subset(task_ids=[f"{FLOW}.finish"], include_upstream=True)
    # batch_mode runs the groups (a manual run is a batch run: every flow)
    assert {t.task_id for t in dag.tasks} == {"batch_mode"} | {
        f"{FLOW}.{t}"
        for t in (
            "wait_for_source_crm",
            "wait_for_mart_marts__dim_customer",
            "wait_for_mart_marts__customer_crosswalk",
            "plan",
            "send_crm_accounts",
            "finish",
        )
    }
    sensors = [t for t in dag.tasks if ".wait_for_" in t.task_id]
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
                landed["runs_before"] = conn.execute("select count(*) from ops.sync_runs").fetchone()[0]

        recovery = threading.Thread(target=crm_extract_lands_once_the_alert_is_out, daemon=True)
        recovery.start()
        run = dag.test()
        recovery.join(timeout=5)

    assert str(run.state) == "success"
    assert landed["runs_before"] == 0  # nothing was planned or pushed while the CRM was stale
    texts = hook.texts()
    assert len(texts) == 2, texts  # one alert, one recovery: the stale pokes in between sent nothing
    assert texts[0].startswith("**[c360 ALERT CRITICAL] source:crm freshness**")
    assert "Holding push_flows" in texts[0] and f"error after {crm.freshness.error_after_hours} h" in texts[0]
    assert "/dags/push_flows/runs/" in texts[0] and f"/tasks/{FLOW}.wait_for_source_crm" in texts[0]
    assert texts[1].startswith("**[c360 RECOVERED] source:crm freshness**")
    assert "push_flows" in texts[1] and "goes on" in texts[1]
    assert not any("source:oa" in t for t in texts)  # OA is stale but nobody here waits on it

    _assert_golden_pushed_once(fresh_db, crm_api, accounts)


def test_event_push_skips_a_flow_with_a_stale_upstream_and_pushes_the_others(fresh_db, crm_api, monkeypatch):
    """Event mode's one task: a call-center change runs the CRM contacts flow and the call-center
    contact-change flow; the latter reads OA, a month behind: it is skipped with its alert, the CRM
    gets the golden values at once."""
    from include.push.runner import event_push_task

    accounts = _warehouse_and_crm(fresh_db, crm_api, monkeypatch, {"oa": timedelta(days=30)})
    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        result = event_push_task(frozenset({"callcenter"}), False, None, consumer="push_flows (event)")

    assert set(result) == {FLOW, "callcenter_contact_changes"}
    (stale,) = result["callcenter_contact_changes"]["skipped_stale"]
    assert stale.startswith("oa ")
    assert result[FLOW]["sent"]["crm_accounts"]["succeeded"] == 3
    (text,) = hook.texts()  # OA's alert only: the fresh upstreams send nothing
    assert text.startswith("**[c360 ALERT CRITICAL] source:oa freshness**")
    assert "Event push of callcenter_contact_changes skipped" in text
    _assert_golden_pushed_once(fresh_db, crm_api, accounts)
