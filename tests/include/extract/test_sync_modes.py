"""Sync modes against a real source database: full with tombstones, incremental, backfill windows,
resume after a failure, and the audit trail in ops.extract_runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.extract.landing import BatchRejected
from include.extract.runner import OVERLAP, SourceLooksEmpty, extract_entity
from include.registry import Entity, Source
from tests.conftest import create_database, drop_database

T0 = datetime(2026, 5, 1, tzinfo=UTC)


def _source(sync_mode: str) -> Source:
    return Source(
        name="shop",
        label="门店",
        kind="database",
        description="a test shop database",
        owner="tests",
        schedule="0 * * * *",
        freshness={"warn_after_hours": 1, "error_after_hours": 2},
        conn_id="shop_db",
        schema="shop",
        entities=[
            Entity(
                name="customers",
                table="customers",
                key="id",
                updated_at="modified",
                sync_mode=sync_mode,
                fields=["id", "name", "modified"],
            )
        ],
    )


@pytest.fixture
def shop(pg_server):
    db = create_database(pg_server, "c360_shop")
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create schema shop")
        conn.execute(
            "create table shop.customers (id text primary key, name text, modified timestamptz not null)"
        )
        conn.execute(
            "insert into shop.customers select 'c' || i, '客户' || i, %s + i * interval '1 hour' "
            "from generate_series(1, 48) i",
            (T0,),
        )
    yield db
    drop_database(db)


def _live(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select distinct on (_record_id) _record_id, _deleted, payload->>'name' from raw_shop.customers "
            "order by _record_id, _seq desc"
        ).fetchall()
    return {r[0]: r[2] for r in rows if not r[1]}


def _runs(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select sync_mode, rows_read, rows_landed, rows_deleted, status from ops.extract_runs "
            "order by started_at"
        ).fetchall()


def test_full_sync_tombstones_deleted_records_and_lands_them_again_if_they_return(shop, fresh_db):
    source = _source("full")
    entity = source.entities[0]
    extract_entity(source, entity, fresh_db.url, source_db_url=shop.url)
    assert len(_live(fresh_db.url)) == 48
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute("delete from shop.customers where id in ('c1', 'c2')")
    result = extract_entity(source, entity, fresh_db.url, source_db_url=shop.url)
    assert (result.received, result.inserted, result.deleted) == (46, 0, 2)
    live = _live(fresh_db.url)
    assert len(live) == 46 and "c1" not in live
    with psycopg.connect(fresh_db.url) as conn:
        history = conn.execute("select count(*) from raw_shop.customers where _record_id = 'c1'").fetchone()[
            0
        ]
    assert history == 2  # the record and its tombstone: nothing is dropped
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute("insert into shop.customers values ('c1', '客户1', %s)", (T0 + timedelta(hours=1),))
    again = extract_entity(source, entity, fresh_db.url, source_db_url=shop.url)
    assert (again.inserted, again.deleted) == (1, 0)
    assert _live(fresh_db.url)["c1"] == "客户1"
    assert [r[3] for r in _runs(fresh_db.url)] == [0, 2, 0]


def test_full_sync_refuses_to_delete_everything_when_the_source_comes_back_empty(shop, fresh_db):
    source = _source("full")
    extract_entity(source, source.entities[0], fresh_db.url, source_db_url=shop.url)
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute("delete from shop.customers")
    with pytest.raises(SourceLooksEmpty, match="48 are live"):
        extract_entity(source, source.entities[0], fresh_db.url, source_db_url=shop.url)
    assert len(_live(fresh_db.url)) == 48
    assert _runs(fresh_db.url)[-1][-1] == "rejected"


def test_incremental_reads_only_changes_and_backfill_reads_exactly_its_window(shop, fresh_db):
    source = _source("incremental")
    entity = source.entities[0]
    first = extract_entity(source, entity, fresh_db.url, source_db_url=shop.url)
    assert first.received == 48
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute(
            "update shop.customers set name = name || '(改)', modified = %s where id = 'c5'",
            (T0 + timedelta(days=10),),
        )
    second = extract_entity(source, entity, fresh_db.url, source_db_url=shop.url)
    # c5's change, and c48 again: it sits at the old high-water mark, inside the overlap
    assert (second.received, second.inserted, second.duplicates) == (2, 1, 1)
    # a backfill of two past intervals re-reads exactly those hours (plus the overlap), landing nothing new
    for hour in (10, 20):
        start = T0 + timedelta(hours=hour)
        result = extract_entity(
            source,
            entity,
            fresh_db.url,
            source_db_url=shop.url,
            run_id=f"backfill-{hour}",
            interval=(start, start + timedelta(hours=1)),
        )
        assert (result.received, result.inserted, result.duplicates) == (
            1 + (timedelta(0) < OVERLAP) * 0,
            0,
            1,
        )
    with psycopg.connect(fresh_db.url) as conn:
        windows = conn.execute(
            "select window_start, window_end from ops.extract_runs where run_id like 'backfill-%' order by 1"
        ).fetchall()
        mark = conn.execute("select high_water_mark from ops.extract_state").fetchone()[0]
    assert windows[0] == (T0 + timedelta(hours=10) - OVERLAP, T0 + timedelta(hours=11))
    assert mark == T0 + timedelta(days=10)  # backfills never move the cursor back
    assert _live(fresh_db.url)["c5"] == "客户5(改)"


def test_a_mostly_bad_batch_fails_loudly_and_lands_nothing(shop, fresh_db):
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute("update shop.customers set name = repeat('垃', 70000) where id !~ '[05]$'")
    source = _source("full")
    with pytest.raises(BatchRejected, match="rows are bad"):
        extract_entity(source, source.entities[0], fresh_db.url, source_db_url=shop.url)
    with psycopg.connect(fresh_db.url) as conn:
        assert conn.execute("select count(*) from raw_shop.customers").fetchone()[0] == 0
        assert conn.execute("select count(*) from ops.quarantine").fetchone()[0] == 0
    assert _runs(fresh_db.url)[-1][-1] == "rejected"


def test_schema_drift_is_landed_and_reported(shop, fresh_db):
    with psycopg.connect(shop.url, autocommit=True) as conn:
        conn.execute("alter table shop.customers add column wechat text default 'wx_1'")
        conn.execute("alter table shop.customers drop column name")
    source = _source("full")
    result = extract_entity(source, source.entities[0], fresh_db.url, source_db_url=shop.url)
    assert result.inserted == 48
    with psycopg.connect(fresh_db.url) as conn:
        drift = conn.execute("select new_fields, missing_fields from ops.extract_runs").fetchone()
        wechat = conn.execute("select payload->>'wechat' from raw_shop.customers limit 1").fetchone()[0]
    assert drift == (["wechat"], ["name"])
    assert wechat == "wx_1"
