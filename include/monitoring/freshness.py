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
)
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
