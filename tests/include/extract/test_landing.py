"""Landing into raw tables: COPY, dedupe on natural key + content hash, quarantine, cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from include.extract.landing import (
    LandingResult,
    ensure_raw_table,
    land_records,
    read_high_water_mark,
    record_batch,
)


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db.url) as conn:
        ensure_raw_table(conn, "raw_crm", "accounts")
        conn.commit()
        yield conn


def _land(conn, records, batch="b1"):
    result = land_records(
        conn,
        source="crm",
        entity="accounts",
        key="id",
        updated_at="updated_at",
        records=records,
        batch_id=batch,
    )
    conn.commit()
    return result


def _rows(conn):
    return conn.execute(
        "select _record_id, _batch_id, _source, payload->>'account_name' from raw_crm.accounts order by 1, 2"
    ).fetchall()


ACME = {"id": "A1", "account_name": "上海云帆科技有限公司", "updated_at": "2026-03-01T08:00:00+08:00"}
BETA = {"id": "A2", "account_name": "王芳", "updated_at": "2026-03-02T09:30:00Z"}


def test_lands_with_load_metadata(conn):
    result = _land(conn, [ACME, BETA])
    assert (result.received, result.inserted, result.duplicates) == (2, 2, 0)
    assert _rows(conn) == [("A1", "b1", "crm", "上海云帆科技有限公司"), ("A2", "b1", "crm", "王芳")]
    updated = conn.execute(
        "select _source_updated_at from raw_crm.accounts where _record_id='A1'"
    ).fetchone()[0]
    assert updated == datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
    assert result.high_water_mark == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def test_same_records_again_land_nothing(conn):
    _land(conn, [ACME, BETA])
    again = _land(conn, [BETA, ACME, ACME], batch="b2")
    assert (again.received, again.inserted, again.duplicates) == (3, 0, 3)
    assert len(_rows(conn)) == 2


def test_a_changed_record_lands_as_a_new_version(conn):
    _land(conn, [ACME])
    edited = dict(ACME, account_name="上海云帆科技公司", updated_at="2026-04-01T00:00:00Z")
    result = _land(conn, [edited], batch="b2")
    assert result.inserted == 1
    assert _rows(conn) == [
        ("A1", "b1", "crm", "上海云帆科技有限公司"),
        ("A1", "b2", "crm", "上海云帆科技公司"),
    ]


def test_bad_rows_are_quarantined_and_good_rows_still_land(conn):
    bad_key = {"account_name": "无编号客户", "updated_at": "2026-03-01T00:00:00Z"}
    bad_date = {"id": "A9", "account_name": "日期错误", "updated_at": "2026-13-45"}
    result = _land(conn, [ACME, bad_key, bad_date, BETA])
    assert (result.inserted, result.quarantined) == (2, 2)
    quarantined = conn.execute(
        "select record_id, reason, raw_record::jsonb->>'account_name' from ops.quarantine order by 3"
    ).fetchall()
    assert quarantined == [
        (None, "missing key field 'id'", "无编号客户"),
        ("A9", "unparseable 'updated_at': '2026-13-45'", "日期错误"),
    ]


def test_cursor_advances_with_the_batch_and_never_goes_back(conn):
    assert read_high_water_mark(conn, "crm", "accounts") is None
    started = datetime.now(UTC)
    result = _land(conn, [ACME, BETA])
    record_batch(conn, result, sync_mode="incremental", started_at=started, advance_cursor=True)
    conn.commit()
    assert read_high_water_mark(conn, "crm", "accounts") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    older = LandingResult("crm", "accounts", "b3", high_water_mark=datetime(2025, 1, 1, tzinfo=UTC))
    record_batch(conn, older, sync_mode="incremental", started_at=started, advance_cursor=True)
    conn.commit()
    assert read_high_water_mark(conn, "crm", "accounts") == datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    logged = conn.execute("select batch_id, received, inserted from ops.load_batches order by 1").fetchall()
    assert logged == [("b1", 2, 2), ("b3", 0, 0)]


def test_rolled_back_batch_leaves_neither_rows_nor_cursor(conn):
    result = _land(conn, [])  # creates ops tables
    land_records(
        conn,
        source="crm",
        entity="accounts",
        key="id",
        updated_at="updated_at",
        records=[ACME],
        batch_id="bx",
    )
    record_batch(conn, result, sync_mode="incremental", started_at=datetime.now(UTC), advance_cursor=True)
    conn.rollback()
    assert _rows(conn) == []
    assert read_high_water_mark(conn, "crm", "accounts") is None


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("2026-03-01T08:00:00+08:00", datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
        ("2026-03-01T00:00:00Z", datetime(2026, 3, 1, 0, 0, tzinfo=UTC)),
        ("2025/08/16 23:30", datetime(2025, 8, 16, 15, 30, tzinfo=UTC)),
        ("2025.8.6", datetime(2025, 8, 5, 16, 0, tzinfo=UTC)),
        ("2025年8月16日", datetime(2025, 8, 15, 16, 0, tzinfo=UTC)),
        ("２０２５－０８－１６ １０:０５:０９", datetime(2025, 8, 16, 2, 5, 9, tzinfo=UTC)),
        ("2025-08-16 10:05:09", datetime(2025, 8, 16, 2, 5, 9, tzinfo=UTC)),
    ],
)
def test_timestamps_as_people_type_them(typed, expected):
    from zoneinfo import ZoneInfo

    from include.extract.landing import parse_timestamp

    assert parse_timestamp(typed, ZoneInfo("Asia/Shanghai")) == expected


@pytest.mark.parametrize("nonsense", ["2025/13/01", "16/08/2025", "yesterday", "2025-02-30"])
def test_impossible_timestamps_raise(nonsense):
    from include.extract.landing import parse_timestamp

    with pytest.raises(ValueError):
        parse_timestamp(nonsense)


def _land_chunk(conn, records, result, batch="run"):
    land_records(
        conn,
        source="crm",
        entity="accounts",
        key="id",
        updated_at="updated_at",
        records=records,
        batch_id=batch,
        result=result,
    )
    conn.commit()


def test_run_into_an_empty_table_dedupes_across_its_own_chunks(conn):
    result = LandingResult("crm", "accounts", "run")
    _land_chunk(conn, [ACME, BETA], result)
    _land_chunk(conn, [BETA, ACME, dict(ACME, account_name="改名")], result)  # a page delivered twice
    assert (result.received, result.inserted, result.duplicates) == (5, 3, 2)
    assert len(_rows(conn)) == 3


def test_a_second_writer_during_a_run_is_not_duplicated(conn, fresh_db):
    """The run starts on an empty table; another loader lands a record the run sees next."""
    result = LandingResult("crm", "accounts", "run")
    _land_chunk(conn, [ACME], result)
    with psycopg.connect(fresh_db.url) as other:
        _land(other, [BETA], batch="other")
    _land_chunk(conn, [BETA, ACME], result)
    assert (result.inserted, result.duplicates) == (1, 2)
    assert _rows(conn) == [("A1", "run", "crm", "上海云帆科技有限公司"), ("A2", "other", "crm", "王芳")]


def test_a_rolled_back_chunk_lands_again_on_retry(conn):
    result = LandingResult("crm", "accounts", "run")
    _land_chunk(conn, [ACME], result)
    land_records(
        conn,
        source="crm",
        entity="accounts",
        key="id",
        updated_at="updated_at",
        records=[BETA],
        batch_id="run",
        result=result,
    )
    conn.rollback()
    _land_chunk(conn, [BETA], result)
    assert [r[0] for r in _rows(conn)] == ["A1", "A2"]


def test_after_a_tombstone_the_same_content_lands_again(conn):
    _land(conn, [ACME])
    conn.execute(
        "insert into raw_crm.accounts (_batch_id, _loaded_at, _source, _record_id, _content_hash, _deleted, "
        "payload) values ('del', now(), 'crm', 'A1', 'x', true, '{}')"
    )
    conn.commit()
    result = _land(conn, [ACME], batch="b2")
    assert result.inserted == 1
    assert conn.execute("select count(*) from raw_crm.accounts where _record_id = 'A1'").fetchone()[0] == 3


def test_text_that_needs_copy_escaping_lands_verbatim(conn):
    odd = {"id": "A\\7\t", "account_name": 'line1\nline2\r\t"引号"\\', "updated_at": None}
    _land(conn, [odd])
    stored = conn.execute("select _record_id, payload from raw_crm.accounts").fetchone()
    assert stored == ("A\\7\t", odd)


def test_nul_characters_are_quarantined(conn):
    result = _land(conn, [ACME, {"id": "A3", "account_name": "坏\x00字符"}])
    assert (result.inserted, result.quarantined) == (1, 1)
    assert conn.execute("select reason from ops.quarantine").fetchone()[0].startswith("NUL character")
