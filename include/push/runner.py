"""Glue for the push DAG's tasks: writers from Airflow connections, one call per task.

Call these in tasks only: they read Airflow connections. Everything they call is plain and tested
without Airflow (:mod:`include.push.engine`, :mod:`include.push.writers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg

from include.config import WAREHOUSE_CONN_ID, component_conn_id, connection_url
from include.push import engine
from include.push.targets import load_targets
from include.push.writers import ErpWriter, HttpWriter, Writer


@contextlib.contextmanager
def writer_for(target_name: str, max_requests_per_second: float) -> Iterator[Writer]:
    from airflow.sdk import BaseHook

    from include.extract.http_api import make_client

    target = load_targets().target(target_name)
    if target.kind == "database":
        with psycopg.connect(connection_url(target.conn_id)) as conn:
            yield ErpWriter(conn)
        return
    api = BaseHook.get_connection(target.conn_id)
    base_url = f"{api.schema or 'http'}://{api.host}:{api.port}"
    with make_client(base_url, api.password, timeout=target.timeout_seconds) as client:
        yield HttpWriter(client, target, max_requests_per_second)


def plan_task(flow_name: str, dry_run: bool) -> dict[str, Any]:
    flow = load_targets().flow(flow_name)
    with psycopg.connect(connection_url(component_conn_id("pusher"))) as conn:
        engine.ensure_ops(conn)
        run_id = engine.new_run_id(flow)
        engine.start_run(conn, run_id, flow, dry_run)
        try:
            plan = engine.plan_flow(conn, flow, run_id, dry_run=dry_run)
        except Exception as exc:
            engine.fail_run(conn, run_id, exc)
            raise
    return {
        "run_id": run_id,
        "dry_run": dry_run,
        "considered": plan.considered,
        "queued": plan.queued,
        "skipped_unchanged": plan.skipped_unchanged,
        "would_send": plan.would_send,
    }


def send_task(
    flow_name: str, target_name: str, plan: dict[str, Any], max_records: int | None
) -> dict[str, Any]:
    flow = load_targets().flow(flow_name)
    with (
        psycopg.connect(connection_url(component_conn_id("pusher"))) as conn,
        writer_for(target_name, flow.max_requests_per_second) as writer,
    ):
        result = engine.send_flow(
            conn, flow, target_name, writer, plan["run_id"], dry_run=plan["dry_run"], max_records=max_records
        )
    if result.error:
        # Everything not acknowledged is still queued with its idempotency key; the retry or the
        # next run sends it. Failing makes the outage visible.
        raise RuntimeError(
            f"{target_name} unavailable, {result.unavailable} records stay queued: {result.error}"
        )
    return result.__dict__


def finish_task(flow_name: str, plan: dict[str, Any] | None) -> dict[str, Any]:
    flow = load_targets().flow(flow_name)
    if not plan:  # finish runs whatever happened upstream (all_done): say why there is nothing
        raise RuntimeError(
            f"flow {flow.name}: its plan task did not complete (a freshness gate timed out or the plan "
            "failed: see that task's log); nothing was queued or sent"
        )
    with psycopg.connect(connection_url(component_conn_id("pusher"))) as conn:
        summary = engine.finish_run(conn, plan["run_id"])
        piled = engine.open_rejects(conn, flow)
    if piled > flow.max_open_rejects:
        raise RuntimeError(
            f"flow {flow.name} has {piled} open rejects (more than {flow.max_open_rejects}): see "
            f"ops.sync_rejects where flow = '{flow.name}' and resolved_at is null"
        )
    summary.pop("detail", None)
    return summary


def event_push_task(
    sources: frozenset[str], dry_run: bool, max_records: int | None, consumer: str, link: str | None = None
) -> dict[str, Any]:
    """Event mode: every flow reacting to ``sources`` (``event_sources``), whole, in one task.

    In a batch run each flow is a task group (freshness sensors, plan, a send per target in its
    pool, finish). A change message should reach the targets within a minute, and each task costs
    a scheduler hop and a process start, so here the same steps run in turn: the flow's gates
    are checked once (a stale upstream skips the flow and raises its ``stale:`` alert; nothing is
    lost: the next batch run, whose sensors wait, finds the change by its diff and sends it), then
    plan, send to each target, finish. A target that fails does not stop the others; the task
    fails at the end so the retry (a new plan: only what is still unacknowledged) and the
    failure alert follow.
    """
    from include.monitoring.alerts import gate_alert, report
    from include.monitoring.freshness import upstream_gate
    from include.monitoring.settings import load_monitoring

    settings = load_monitoring()
    max_age = timedelta(hours=settings.mart_max_age_hours)
    results: dict[str, Any] = {}
    errors: list[str] = []
    for flow in load_targets().event_flows(sources):
        with psycopg.connect(connection_url(WAREHOUSE_CONN_ID)) as conn:
            verdicts = [upstream_gate(conn, source=s, max_age=max_age) for s in flow.reads_sources]
            verdicts += [upstream_gate(conn, mart=m, max_age=max_age) for m in flow.triggers]
            holding = f"Event push of {flow.name} skipped; the next batch push_flows run sends it once fresh."
            for verdict in verdicts:
                alert = gate_alert(verdict, consumer, holding, link)
                with contextlib.suppress(Exception):  # alerting trouble must not change the decision
                    report(conn, settings, alert, firing=not verdict.fresh)
        stale = [v.detail for v in verdicts if not v.fresh]
        if stale:
            results[flow.name] = {"skipped_stale": stale}
            continue
        planned = plan_task(flow.name, dry_run)
        sent: dict[str, Any] = {}
        for target in flow.targets:
            try:
                sent[target] = send_task(flow.name, target, planned, max_records)
            except Exception as exc:  # the others still get theirs; failed below
                errors.append(f"{flow.name} -> {target}: {exc}")
                sent[target] = {"error": str(exc)}
        try:
            results[flow.name] = {"plan": planned, "sent": sent, "run": finish_task(flow.name, planned)}
        except RuntimeError as exc:  # rejects piling up: reported like the batch finish task
            errors.append(str(exc))
            results[flow.name] = {"plan": planned, "sent": sent}
    if errors:
        raise RuntimeError("; ".join(errors))
    return results
