"""Figures a person reads after a run: records per source, customers, identity quality, pushes,
freshness."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from include.config import ground_truth_dir
from include.identity.quality import QualityInputError, QualityReport, score_resolution
from include.registry import load_sources


def _scalar(conn: psycopg.Connection, query: str | sql.Composable, params: tuple = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return bool(_scalar(conn, "select to_regclass(%s) is not null", (relation,)))


def pipeline_summary(conn: psycopg.Connection, since: datetime) -> dict[str, Any]:
    """Figures for the run that started at ``since`` (what it landed and pushed) and the totals."""
    sources = []
    for source in load_sources():
        records = landed = 0
        for entity in source.entities:
            table = f"{source.raw_schema}.{entity.name}"
            if not _exists(conn, table):
                continue
            ident = sql.Identifier(source.raw_schema, entity.name)
            records += _scalar(conn, sql.SQL("select count(distinct _record_id) from {}").format(ident))
        if _exists(conn, "ops.load_batches"):
            landed = _scalar(
                conn,
                "select coalesce(sum(inserted), 0) from ops.load_batches "
                "where source = %s and started_at >= %s",
                (source.name, since),
            )
        sources.append({"source": source.name, "records": records, "landed_this_run": int(landed)})
    summary: dict[str, Any] = {
        "sources": sources,
        "customers": 0,
        "crosswalk_records": 0,
        "pushes": "n/a",
        "quality": None,
    }
    if _exists(conn, "marts.dim_customer"):
        summary["customers"] = _scalar(conn, "select count(*) from marts.dim_customer")
        summary["crosswalk_records"] = _scalar(conn, "select count(*) from marts.customer_crosswalk")
        summary["quality"] = identity_quality(conn)
    summary["marts"] = customer_360_summary(conn) if _exists(conn, "marts.customer_360") else None
    if _exists(conn, "ops.sync_runs"):
        row = conn.execute(
            "select sum(sent), sum(succeeded), sum(rejected), sum(conflicts), sum(skipped_unchanged), "
            "count(distinct flow) from ops.sync_runs where started_at >= %s and not dry_run having "
            "count(*) > 0",
            (since,),
        ).fetchone()
        if row:
            summary["pushes"] = (
                f"{row[0]:,} sent by {row[5]} flows: {row[1]:,} acknowledged, {row[2]:,} rejected, "
                f"{row[3]:,} conflicts ({row[4]:,} unchanged, not sent)"
            )
    if _exists(conn, "ops.freshness_checks"):
        rows = conn.execute(
            "select status, count(*) from ops.freshness_checks "
            "where checked_at = (select max(checked_at) from ops.freshness_checks) group by status order by 1"
        ).fetchall()
        summary["freshness"] = ", ".join(f"{n} {status}" for status, n in rows)
    else:
        summary["freshness"] = "not checked"
    summary["health"] = "not measured"
    if _exists(conn, "monitoring.pipeline_health"):
        query = "select system, status from monitoring.pipeline_health order by system"
        rows = conn.execute(query).fetchall()
        summary["health"] = ", ".join(f"{system} {status}" for system, status in rows)
    return summary


def identity_quality(conn: psycopg.Connection) -> QualityReport | None:
    """The resolution scored against the sandbox ground truth; None without a ground truth (a
    warehouse fed by real systems has none)."""
    try:
        return score_resolution(conn, ground_truth_dir())
    except QualityInputError:
        return None


def customer_360_summary(conn: psycopg.Connection) -> dict[str, Any]:
    """What the business marts say today: orders and value, lifecycle, segments and open alerts."""

    def counts(query: str) -> str:
        return ", ".join(f"{n:,} {label}" for label, n in conn.execute(query).fetchall()) or "none"

    orders, value = conn.execute(
        "select count(*) filter (where not is_cancelled and not is_refund), "
        "coalesce(sum(net_amount_cny), 0) from marts.fct_orders"
    ).fetchone()
    return {
        "orders": orders,
        "lifetime_value_cny": value,
        "lifecycle": counts(
            "select lifecycle_stage, customers from marts.lifecycle_stats order by stage_order"
        ),
        "segments": counts("select segment, count(*) from marts.customer_360 group by 1 order by 2 desc, 1"),
        "alerts": counts("select alert_type, count(*) from marts.customer_alerts group by 1 order by 1"),
    }
