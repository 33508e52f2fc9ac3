"""The "data as of" the BI refresh records and the dashboards show: the oldest last success."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg

from include.config import PgUrl
from include.extract.landing import OPS_DDL
from include.monitoring.bi import data_as_of


def test_oldest_last_successful_extract_over_the_sources_entities(fresh_db: PgUrl) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        assert data_as_of(conn, ["crm"]) is None  # no ops tables yet: nothing to be as of
        conn.execute(OPS_DDL)
        runs = [
            ("r1", "crm", "accounts", "2026-11-25 08:00+00", "success"),
            ("r2", "crm", "accounts", "2026-11-25 10:00+00", "success"),
            ("r2", "crm", "contacts", "2026-11-25 09:00+00", "success"),
            ("r3", "crm", "contacts", "2026-11-25 11:00+00", "failed"),  # a failure is no newer data
            ("r4", "erp", "invoices", "2026-11-25 06:00+00", "success"),
        ]
        conn.cursor().executemany(
            "insert into ops.extract_runs "
            "(run_id, source, entity, sync_mode, started_at, finished_at, status) "
            "values (%s, %s, %s, 'full', %s, %s, %s)",
            [(r, s, e, at, at, status) for r, s, e, at, status in runs],
        )
        assert data_as_of(conn, ["crm"]) == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
        assert data_as_of(conn, ["crm", "erp"]) == datetime(2026, 11, 25, 6, 0, tzinfo=UTC)
        assert data_as_of(conn, ["oa"]) is None
