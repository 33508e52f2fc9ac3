"""The Airflow callbacks: task failure and recovery, and a missed Deadline, reach the webhook."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import psycopg

from tests.receivers import alert_connections, webhook_receiver


@dataclass
class FinishedTask:
    """What a callback reads from ``context["ti"]`` (Airflow hands it a RuntimeTaskInstance)."""

    dag_id: str = "push_flows"
    task_id: str = "crm_golden_contacts.send_crm_accounts"
    run_id: str = "scheduled__2026-11-25T10:00:00+00:00"
    try_number: int = 3
    log_url: str = (
        "http://127.0.0.1:8080/dags/push_flows/runs/scheduled__2026-11-25T10%3A00%3A00%2B00%3A00"
        "/tasks/crm_golden_contacts.send_crm_accounts?try_number=3"
    )


def _warehouse(monkeypatch, db) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_C360_WAREHOUSE",
        json.dumps(
            {"conn_type": "postgres", "host": db.host, "port": db.port, "login": db.user, "schema": db.dbname}
        ),
    )


def test_failure_then_success_is_one_alert_and_one_recovery(fresh_db, monkeypatch):
    from c360_monitoring import on_task_failure, on_task_success

    _warehouse(monkeypatch, fresh_db)
    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        on_task_success({"ti": FinishedTask(run_id="earlier")})  # nothing was wrong: no message
        error = RuntimeError("crm_accounts unavailable, 3 records stay queued")
        on_task_failure({"ti": FinishedTask(), "exception": error})
        on_task_failure({"ti": FinishedTask(), "exception": error})  # the next run fails the same way
        on_task_success({"ti": FinishedTask(run_id="later")})
    texts = hook.texts()
    assert len(texts) == 2
    assert texts[0].startswith(
        "**[c360 ALERT CRITICAL] task push_flows.crm_golden_contacts.send_crm_accounts**"
    )
    assert "try 3 failed: RuntimeError: crm_accounts unavailable" in texts[0]
    assert FinishedTask.log_url in texts[0]
    assert texts[1].startswith("**[c360 RECOVERED] task push_flows.crm_golden_contacts.send_crm_accounts**")
    assert "Run later succeeded." in texts[1]


def test_a_missed_deadline_alerts_once_per_run(fresh_db, monkeypatch):
    from c360_monitoring.callbacks import on_deadline_missed

    _warehouse(monkeypatch, fresh_db)
    context = {
        "dag_run": {"dag_id": "refresh_bi", "dag_run_id": "asset_triggered__2026-11-25"},
        "deadline": {"id": "d1", "deadline_time": "2026-11-25T13:00:00+00:00"},
    }
    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        asyncio.run(on_deadline_missed(context, what="dashboards are stale"))
        asyncio.run(on_deadline_missed(context, what="dashboards are stale"))
    (text,) = hook.texts()
    assert text.startswith("**[c360 ALERT WARNING] refresh_bi missed its deadline**")
    assert "had not finished by 2026-11-25T13:00:00+00:00: dashboards are stale" in text
    assert "/dags/refresh_bi/runs/asset_triggered__2026-11-25" in text
    with psycopg.connect(fresh_db.url) as conn:
        assert conn.execute("select count(*) from monitoring.alert_log").fetchone()[0] == 1
