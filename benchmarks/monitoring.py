"""Monitoring cost: the health view, a freshness poke and a health evaluation on a long audit history.

A warehouse gets ``days`` of audit history as the pipeline would write it: every entity of every
registry source extracted every 15 minutes (``ops.extract_runs``), a CRM push every 15 minutes with
200 records each, some rejected (``ops.push_runs`` / ``ops.push_log``), and data checks per build.
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
    conn.execute(
        "insert into ops.push_runs select 'p' || i, 'crm.accounts', %s - i * interval '15 minutes', "
        "%s - i * interval '15 minutes', 200, 200, 195, 5, 0 from generate_series(0, %s) i",
        (now, now, slots - 1),
    )
    conn.execute(
        "insert into ops.push_log (run_id, target, record_id, customer_key, payload, payload_hash, status, "
        "pushed_at) select 'p' || (i / 200), 'crm.accounts', 'A' || (i %% 20000), 'k' || (i %% 20000), '{}', "
        "'h', case when i %% 40 = 0 then 'rejected' else 'updated' end, "
        "%s - (i / 200) * interval '15 minutes' from generate_series(0, %s) i",
        (now, slots * 200 - 1),
    )
    conn.execute(
        "insert into monitoring.data_checks select 'c' || i, %s - i * interval '1 hour', r.relation, "
        "'row_count', 1000, '', true, 'ok' from generate_series(0, %s) i, "
        "(values ('marts.dim_customer'), ('marts.customer_crosswalk')) r(relation)",
        (now, days * 24 - 1),
    )
    conn.execute("analyze")
    conn.commit()
    return {
        table: conn.execute(f"select count(*) from {table}").fetchone()[0]
        for table in ("ops.extract_runs", "ops.push_log", "monitoring.data_checks")
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
