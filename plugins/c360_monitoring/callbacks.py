"""Airflow callbacks that turn task failures, recoveries and missed deadlines into alerts.

``alert_callbacks()`` goes into a DAG's ``default_args``; ``deadline_alert(...)`` into its
``deadline=``. Both send through ``include.monitoring.alerts`` (one message per state change, a
recovery message when the task next succeeds, a link to the task log).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from include.config import WAREHOUSE_CONN_ID

log = logging.getLogger(__name__)


def _task_alert(context: Any, firing: bool) -> None:
    import psycopg

    from include.config import connection_url
    from include.monitoring.alerts import Alert, report
    from include.monitoring.settings import load_monitoring

    ti = context["ti"]
    key = f"task:{ti.dag_id}.{ti.task_id}"
    if firing:
        exc = context.get("exception")
        reason = f"{type(exc).__name__}: {exc}" if exc is not None else "see the task log"
        detail = f"Run {ti.run_id}, try {ti.try_number} failed: {reason}"[:1500]
    else:
        detail = f"Run {ti.run_id} succeeded."
    alert = Alert(
        key=key,
        severity="critical",
        title=f"task {ti.dag_id}.{ti.task_id}",
        detail=detail,
        link=getattr(ti, "log_url", None),
    )
    try:
        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            report(conn, load_monitoring(), alert, firing=firing)
    except Exception:  # a callback that raises only hides the original failure
        log.exception("could not record or send alert %s", key)


def on_task_failure(context: Any) -> None:
    """A task failed for good (after its retries): alert once."""
    _task_alert(context, firing=True)


def on_task_success(context: Any) -> None:
    """A task succeeded: send the recovery message if its failure was alerted."""
    _task_alert(context, firing=False)


def alert_callbacks() -> dict[str, Any]:
    """``default_args={..., **alert_callbacks()}``: failure alerts and recovery messages per task."""
    return {"on_failure_callback": on_task_failure, "on_success_callback": on_task_success}


def _deadline_missed(context: dict[str, Any], what: str) -> None:
    import psycopg

    from include.config import connection_url
    from include.monitoring.alerts import Alert, report
    from include.monitoring.settings import load_monitoring

    settings = load_monitoring()
    run = context.get("dag_run") or {}
    dag_id, run_id = run.get("dag_id", "?"), run.get("dag_run_id") or run.get("run_id", "?")
    deadline = (context.get("deadline") or {}).get("deadline_time")
    alert = Alert(
        key=f"deadline:{dag_id}:{run_id}",
        severity="warning",
        title=f"{dag_id} missed its deadline",
        detail=f"Run {run_id} of {dag_id} had not finished by {deadline}: {what}",
        link=f"{settings.airflow_base_url.rstrip('/')}/dags/{dag_id}/runs/{run_id}",
    )
    with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
        report(conn, settings, alert, firing=True)


async def on_deadline_missed(context: dict[str, Any], what: str = "") -> None:
    """Deadline Alert callback (runs in the triggerer): one alert per missed run."""
    await asyncio.to_thread(_deadline_missed, context, what)


def deadline_alert(within: timedelta, what: str):
    """An Airflow 3 Deadline Alert: warn when a run has not finished ``within`` of being queued.

    Airflow 3.3.2's ``dag.test()`` / ``airflow dags test`` cannot finish a run of a DAG that has a
    deadline (it looks the in-memory alert up as a database id), so DAGs that ``make demo`` runs
    through ``airflow dags test`` do not carry one yet; the scheduler path is unaffected.
    """
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=within,
        callback=AsyncCallback(on_deadline_missed, kwargs={"what": what}),
    )
