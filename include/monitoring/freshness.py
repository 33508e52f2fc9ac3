"""Source freshness against the registry's SLAs, from the load metadata on every raw row.

The same thresholds feed dbt's ``sources.yml`` (``dbt source freshness``); this check runs
without dbt so the monitoring DAG can gate pushes and BI refreshes cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import psycopg
from psycopg import sql

from include.extract.landing import OPS_SCHEMA
from include.registry import Source

Status = Literal["pass", "warn", "error"]

CHECKS_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.freshness_checks (
    checked_at timestamptz not null,
    source text not null,
    entity text not null,
    last_loaded_at timestamptz,
    age_hours numeric,
    warn_after_hours integer not null,
    error_after_hours integer not null,
    status text not null check (status in ('pass', 'warn', 'error')),
    primary key (checked_at, source, entity)
);
-- 'warehouse': this module's check of raw _loaded_at; 'dbt': a `dbt source freshness` run
alter table {OPS_SCHEMA}.freshness_checks
    add column if not exists checked_by text not null default 'warehouse';
"""


@dataclass(frozen=True)
class FreshnessResult:
    source: str
    entity: str
    last_loaded_at: datetime | None
    age: timedelta | None
    warn_after: timedelta
    error_after: timedelta

    @property
    def status(self) -> Status:
        if self.age is None or self.age > self.error_after:
            return "error"
        return "warn" if self.age > self.warn_after else "pass"

    def describe(self) -> str:
        age = "never loaded" if self.age is None else f"{self.age.total_seconds() / 3600:.1f} h old"
        return f"{self.source}.{self.entity}: {self.status} ({age})"


def check_freshness(
    conn: psycopg.Connection, sources: tuple[Source, ...], now: datetime | None = None
) -> list[FreshnessResult]:
    """Measure every raw table's last load and record the results in ``ops.freshness_checks``."""
    now = now or datetime.now(UTC)
    conn.execute(CHECKS_DDL)
    results = []
    for source in sources:
        for entity in source.entities:
            exists = conn.execute(
                "select to_regclass(%s) is not null", (f"{source.raw_schema}.{entity.name}",)
            ).fetchone()[0]
            last = None
            if exists:
                last = conn.execute(
                    sql.SQL("select max(_loaded_at) from {}").format(
                        sql.Identifier(source.raw_schema, entity.name)
                    )
                ).fetchone()[0]
            results.append(
                FreshnessResult(
                    source=source.name,
                    entity=entity.name,
                    last_loaded_at=last,
                    age=None if last is None else now - last,
                    warn_after=timedelta(hours=source.freshness.warn_after_hours),
                    error_after=timedelta(hours=source.freshness.error_after_hours),
                )
            )
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {OPS_SCHEMA}.freshness_checks values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    now,
                    r.source,
                    r.entity,
                    r.last_loaded_at,
                    None if r.age is None else round(r.age.total_seconds() / 3600, 3),
                    r.warn_after // timedelta(hours=1),
                    r.error_after // timedelta(hours=1),
                    r.status,
                )
                for r in results
            ],
        )
    conn.commit()
    return results


# --- Gates: may a consumer (a push flow, the BI refresh) read what its upstream produced? ---------


@dataclass(frozen=True)
class GateVerdict:
    """One upstream (a source or a mart) as a consumer's sensor sees it."""

    upstream: str  # "source:crm" or "mart:marts.dim_customer"
    fresh: bool
    severity: str | None  # None when fresh; "warning" past the SLA, "critical" past its error level
    age: timedelta | None
    detail: str

    @property
    def alert_key(self) -> str:
        return f"stale:{self.upstream}"


def _hours(delta: timedelta | None) -> str:
    return "never" if delta is None else f"{delta.total_seconds() / 3600:.1f} h ago"


def source_gate(conn: psycopg.Connection, source: Source, now: datetime | None = None) -> GateVerdict:
    """Fresh when every entity of ``source`` had a successful extract within its SLA (warn level).

    A successful run confirms the warehouse matches the source as of then, so a quiet source with
    nothing new to land stays fresh; a failing or late extract does not.
    """
    now = now or datetime.now(UTC)
    rows = dict(
        conn.execute(
            f"select entity, max(finished_at) filter (where status = 'success') "
            f"from {OPS_SCHEMA}.extract_runs where source = %s group by entity",
            (source.name,),
        ).fetchall()
        if conn.execute(f"select to_regclass('{OPS_SCHEMA}.extract_runs') is not null").fetchone()[0]
        else []
    )
    last = {e.name: rows.get(e.name) for e in source.entities}
    never = sorted(name for name, at in last.items() if at is None)
    warn = timedelta(hours=source.freshness.warn_after_hours)
    error = timedelta(hours=source.freshness.error_after_hours)
    if never:
        return GateVerdict(
            f"source:{source.name}",
            False,
            "critical",
            None,
            f"{source.name} ({source.label}): no successful extract of {', '.join(never)} yet",
        )
    stalest_entity, stalest = min(last.items(), key=lambda kv: kv[1])
    age = now - stalest
    fresh = age <= warn
    severity = None if fresh else ("critical" if age > error else "warning")
    sla = f"SLA {source.freshness.warn_after_hours} h, error after {source.freshness.error_after_hours} h"
    detail = (
        f"{source.name} ({source.label}): last successful extract of {stalest_entity} "
        f"{_hours(age)} at {stalest:%Y-%m-%d %H:%M %Z} ({sla})"
    )
    return GateVerdict(f"source:{source.name}", fresh, severity, age, detail)


def mart_gate(
    conn: psycopg.Connection, relation: str, max_age: timedelta, now: datetime | None = None
) -> GateVerdict:
    """Fresh when ``relation`` was rebuilt within ``max_age`` by a dbt build whose data checks
    (``monitoring.data_checks``) all passed."""
    now = now or datetime.now(UTC)
    if not conn.execute("select to_regclass('monitoring.data_checks') is not null").fetchone()[0]:
        return GateVerdict(
            f"mart:{relation}", False, "critical", None, f"{relation}: no data checks recorded yet"
        )
    good, latest_failed = conn.execute(
        """
        with runs as (
            select run_id, max(checked_at) as at, bool_and(passed) as passed
            from monitoring.data_checks where relation = %s group by run_id
        )
        select (select max(at) from runs where passed),
               (select not passed from runs order by at desc limit 1)
        """,
        (relation,),
    ).fetchone()
    age = None if good is None else now - good
    fresh = age is not None and age <= max_age
    severity = None if fresh else ("critical" if latest_failed or age is None else "warning")
    failed = " ; its latest build failed its data checks" if latest_failed else ""
    detail = (
        f"{relation}: last build that passed its data checks {_hours(age)} "
        f"(max age {max_age.total_seconds() / 3600:g} h){failed}"
    )
    return GateVerdict(f"mart:{relation}", fresh, severity, age, detail)


def upstream_gate(
    conn: psycopg.Connection, *, source: str | None = None, mart: str | None = None, max_age: timedelta
) -> GateVerdict:
    """The verdict on one upstream of a consumer: a registry source or a mart with data checks."""
    if (source is None) == (mart is None):
        raise ValueError("a gate checks exactly one of source= or mart=")
    if source is not None:
        from include.registry import get_source

        return source_gate(conn, get_source(source))
    return mart_gate(conn, mart, max_age)
