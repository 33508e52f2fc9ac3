"""Glue for the push DAG's tasks: writers from Airflow connections, one call per task.

Call these in tasks only: they read Airflow connections. Everything they call is plain and tested
without Airflow (:mod:`include.push.engine`, :mod:`include.push.writers`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import psycopg

from include.config import component_conn_id, connection_url
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
