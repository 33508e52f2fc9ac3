"""The BI refresh: what dashboards show is republished only from fresh data, with its "as of" time.

Dashboards read the marts (tables) and ``monitoring.pipeline_health``; what needs refreshing is
every materialized view in the BI schemas (refreshed concurrently when it has a unique index, so
readers are never blocked) and the "data as of" stamp dashboards display, which is the oldest
last-successful-extract among the sources the BI layer reads. A BI tool's own cache refresh
(a Superset/Metabase/Tableau API call) belongs here too, behind its own Airflow connection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from include.extract.landing import OPS_SCHEMA

BI_SCHEMAS = ("bi",)


@dataclass(frozen=True)
class BiRefresh:
    refreshed_at: datetime
    data_as_of: datetime | None
    views: list[str]
    duration_s: float


def data_as_of(conn: psycopg.Connection, sources: list[str]) -> datetime | None:
    """The time the BI layer's data is as of: the oldest last successful extract over the given
    sources' entities (what dashboards display as "data as of"); None before any extract."""
    if conn.execute("select to_regclass(%s)", (f"{OPS_SCHEMA}.extract_runs",)).fetchone()[0] is None:
        return None
    return conn.execute(
        "select min(last) from (select source, entity, max(finished_at) as last "
        f"from {OPS_SCHEMA}.extract_runs where status = 'success' and source = any(%s) "
        "group by source, entity) s",
        (sources,),
    ).fetchone()[0]


def refresh_bi(
    conn: psycopg.Connection, sources: list[str], schemas: tuple[str, ...] = BI_SCHEMAS
) -> BiRefresh:
    from include.monitoring.health import TABLES_DDL

    conn.execute(TABLES_DDL)
    t0 = time.monotonic()
    views = conn.execute(
        "select schemaname, matviewname, exists (select 1 from pg_indexes i "
        "where i.schemaname = m.schemaname and i.tablename = m.matviewname "
        "and i.indexdef ilike 'create unique%%') "
        "from pg_matviews m where schemaname = any(%s) order by 1, 2",
        (list(schemas),),
    ).fetchall()
    for schema, name, has_unique in views:
        concurrently = sql.SQL("concurrently ") if has_unique else sql.SQL("")
        conn.execute(
            sql.SQL("refresh materialized view {}{}").format(concurrently, sql.Identifier(schema, name))
        )
    as_of = data_as_of(conn, sources)
    refreshed_at = conn.execute("select now()").fetchone()[0]
    result = BiRefresh(refreshed_at, as_of, [f"{s}.{n}" for s, n, _ in views], time.monotonic() - t0)
    conn.execute(
        "insert into monitoring.bi_refreshes values (%s, %s, %s, %s)",
        (result.refreshed_at, result.data_as_of, result.views, round(result.duration_s, 3)),
    )
    conn.commit()
    return result


def refresh_due(conn: psycopg.Connection, min_interval: timedelta, now: datetime | None = None) -> bool:
    """Whether an event-mode refresh is due: none is recorded yet, or the latest is older than
    ``min_interval``. Change messages can rebuild the marts every minute; dashboards need not
    follow each one (the batch builds always refresh)."""
    from include.monitoring.health import TABLES_DDL

    conn.execute(TABLES_DDL)
    last = conn.execute("select max(refreshed_at) from monitoring.bi_refreshes").fetchone()[0]
    return last is None or (now or datetime.now(UTC)) - last >= min_interval
