"""Monitoring cost: the health view, a freshness poke and a health evaluation on a long audit history.

A warehouse gets ``days`` of audit history as the pipeline would write it: every entity of every
registry source extracted every 15 minutes (``ops.extract_runs``), a ``crm_golden_contacts`` sync
run every 15 minutes sending 200 records each, as the sync engine leaves them (``ops.sync_runs``,
``ops.sync_outbox``, ``ops.sync_state``, ``ops.sync_rejects``: 2.5% of the records are always
rejected, so they pile up as open rejects; a few ``ops.sync_conflicts``), the latency measured per
run (``monitoring.push_latency``), and data checks per build.
Then, each the median of several runs:

- ``select * from monitoring.pipeline_health`` (what a dashboard tile runs);
- one freshness sensor poke (``source_gate`` for the CRM, ``mart_gate`` for ``marts.dim_customer``);
- one ``alert_on_health`` evaluation with no channel configured (state bookkeeping only).

Target: the health view within 1 s and a poke within 50 ms at 90 days, so both can run as often as
anyone likes.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from benchmarks.common import Result, Workspace, say
from include.monitoring.alerts import alert_on_health
from include.monitoring.freshness import mart_gate, source_gate
from include.monitoring.health import ensure_monitoring
from include.monitoring.settings import load_monitoring
from include.registry import load_sources

HEALTH_TARGET_S = 1.0
POKE_TARGET_S = 0.05


def _median(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


FLOW, TARGET = "crm_golden_contacts", "crm_accounts"


def _sync_history(conn: psycopg.Connection, now: datetime, slots: int) -> None:
    """Run ``p<r>`` (r = 0 is the latest) sent records ``A<n % 20000>`` for n in [200 r, 200 r + 200):
    each record once every 100 runs. Records whose number is a multiple of 40 are always rejected:
    their latest outbox row waits as ``rejected``, the earlier ones were superseded by it, and none
    of their rejects is ever resolved. Every other row was acknowledged."""
    params = {"flow": FLOW, "target": TARGET, "now": now, "last": slots - 1, "rows": slots * 200 - 1}
    conn.execute(
        "insert into ops.sync_runs (run_id, flow, dry_run, started_at, finished_at, considered, queued, "
        "sent, succeeded, rejected, status, detail) "
        "select 'p' || r, %(flow)s, false, %(now)s - r * interval '15 minutes' - interval '1 minute', "
        "%(now)s - r * interval '15 minutes', 20000, 200, 200, 195, 5, 'partial', "
        "jsonb_build_object('send_' || %(target)s, jsonb_build_object('error', null)) "
        "from generate_series(0, %(last)s) r",
        params,
    )
    conn.execute(
        "insert into ops.sync_outbox (flow, target, record_key, customer_key, payload, payload_hash, status, "
        "attempts, last_run_id, enqueued_at, updated_at) "
        "select %(flow)s, %(target)s, 'A' || (n %% 20000), 'k' || (n %% 20000), '{}', 'h', "
        "case when n %% 40 <> 0 then 'acked' when n / 200 < 100 then 'rejected' else 'superseded' end, 1, "
        "'p' || (n / 200), %(now)s - (n / 200) * interval '15 minutes' - interval '1 minute', "
        "%(now)s - (n / 200) * interval '15 minutes' from generate_series(0, %(rows)s) n",
        params,
    )
    conn.execute(
        "insert into ops.sync_rejects (run_id, flow, target, record_key, outbox_id, payload, error, attempt, "
        "rejected_at) select last_run_id, flow, target, record_key, id, payload, 'invalid phone', 1, "
        "updated_at from ops.sync_outbox where status in ('rejected', 'superseded')"
    )
    conn.execute(
        "insert into ops.sync_state (flow, target, record_key, acked_hash, acked_payload, acked_at) "
        "select %(flow)s, %(target)s, 'A' || k, 'h', '{}', %(now)s from generate_series(0, 19999) k "
        "where k %% 40 <> 0",
        params,
    )
    # one conflict every 500 runs, resolved once re-read, except the latest
    conn.execute(
        "insert into ops.sync_conflicts (run_id, flow, target, record_key, outbox_id, payload, payload_hash, "
        "detected_at, resolved_at) select 'p' || r, %(flow)s, %(target)s, 'A' || (r * 200 + 1), 0, '{}', "
        "'h', %(now)s - r * interval '15 minutes', "
        "case when r > 0 then %(now)s - (r - 1) * interval '15 minutes' end "
        "from generate_series(0, %(last)s, 500) r",
        params,
    )
    conn.execute(
        "insert into monitoring.push_latency select 'p' || r, %(flow)s, %(target)s, "
        "%(now)s - r * interval '15 minutes', 195, 20, 45, 90 from generate_series(0, %(last)s) r",
        params,
    )


def _history(conn: psycopg.Connection, days: int) -> dict[str, int]:
    now = datetime.now(UTC)
    slots = days * 24 * 4
    for source in load_sources():
        for entity in source.entities:
            conn.execute(
                "insert into ops.extract_runs (run_id, source, entity, sync_mode, rows_read, rows_landed, "
                "rows_quarantined, started_at, finished_at, duration_s, status) "
                "select 'r' || i, %s, %s, %s, 500 + (i %% 7) * 10, 100, i %% 3, "
                "%s - i * interval '15 minutes' - interval '1 minute', %s - i * interval '15 minutes', 60, "
                "case when i %% 97 = 0 then 'failed' else 'success' end "
                "from generate_series(0, %s) i",
                (source.name, entity.name, entity.sync_mode, now, now, slots - 1),
            )
    _sync_history(conn, now, slots)
    conn.execute(
        "insert into monitoring.data_checks select 'c' || i, %s - i * interval '1 hour', r.relation, "
        "'row_count', 1000, '', true, 'ok' from generate_series(0, %s) i, "
        "(values ('marts.dim_customer'), ('marts.customer_crosswalk')) r(relation)",
        (now, days * 24 - 1),
    )
    conn.execute("analyze")
    conn.commit()
    return {
        table: conn.execute(
            sql.SQL("select count(*) from {}").format(sql.Identifier(*table.split(".")))
        ).fetchone()[0]
        for table in (
            "ops.extract_runs",
            "ops.sync_runs",
            "ops.sync_outbox",
            "ops.sync_rejects",
            "ops.sync_conflicts",
            "monitoring.data_checks",
        )
    }


def run(ws: Workspace, days: int = 90) -> Result:
    url = ws.fresh_database("monitoring")
    settings = load_monitoring()
    crm = next(s for s in load_sources() if s.name == "crm")
    with psycopg.connect(url) as conn:
        ensure_monitoring(conn, settings, load_sources())
        say(f"monitoring: writing {days} days of audit history")
        counts = _history(conn, days)
        health_s = _median(lambda: conn.execute("select * from monitoring.pipeline_health").fetchall())
        source_poke_s = _median(lambda: source_gate(conn, crm))
        mart_poke_s = _median(lambda: mart_gate(conn, "marts.dim_customer", timedelta(hours=6)))
        evaluate_s = _median(
            lambda: alert_on_health(conn, settings, send=lambda channel, message: None), runs=3
        )
        systems = dict(conn.execute("select system, status from monitoring.pipeline_health").fetchall())
    poke_s = max(source_poke_s, mart_poke_s)
    return Result(
        name="monitoring",
        figure=health_s,
        unit="s",
        target=f"health view <= {HEALTH_TARGET_S:g} s, poke <= {POKE_TARGET_S * 1000:g} ms at {days} days",
        met=health_s <= HEALTH_TARGET_S and poke_s <= POKE_TARGET_S,
        details={
            "days": days,
            "rows": counts,
            "health_view_s": round(health_s, 4),
            "source_poke_s": round(source_poke_s, 4),
            "mart_poke_s": round(mart_poke_s, 4),
            "alert_on_health_s": round(evaluate_s, 4),
            "systems": systems,
        },
    )
