"""Land source records in the warehouse: append-only raw tables, loaded with COPY.

Every raw table has the same shape (see ``RAW_COLUMNS``); the record itself is kept
whole in ``payload`` so a source adding a column never breaks a load. A record is
stored once per distinct content: re-running a batch, retrying a task or receiving the
same page twice inserts nothing new (unique on natural key + content hash).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

OPS_SCHEMA = "ops"

RAW_COLUMNS_DDL = """
    _batch_id text not null,
    _loaded_at timestamptz not null,
    _source text not null,
    _record_id text not null,
    _content_hash text not null,
    _source_updated_at timestamptz,
    payload jsonb not null
"""
RAW_DDL = "create table if not exists {table} (" + RAW_COLUMNS_DDL + ")"
RAW_COLUMNS = (
    "_batch_id",
    "_loaded_at",
    "_source",
    "_record_id",
    "_content_hash",
    "_source_updated_at",
    "payload",
)

OPS_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.load_batches (
    batch_id text not null,
    source text not null,
    entity text not null,
    sync_mode text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    received integer not null,
    inserted integer not null,
    duplicates integer not null,
    quarantined integer not null,
    high_water_mark timestamptz,
    primary key (batch_id, source, entity)
);
create table if not exists {OPS_SCHEMA}.extract_state (
    source text not null,
    entity text not null,
    high_water_mark timestamptz not null,
    updated_at timestamptz not null default now(),
    primary key (source, entity)
);
create table if not exists {OPS_SCHEMA}.quarantine (
    quarantined_at timestamptz not null default now(),
    batch_id text not null,
    source text not null,
    entity text not null,
    record_id text,
    raw_record text not null,
    reason text not null
);
"""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"cannot serialise {type(value).__name__} into a raw payload")


def canonical_json(record: dict[str, Any]) -> str:
    """The payload as stored and hashed: keys sorted, Chinese kept readable."""
    return json.dumps(record, sort_keys=True, ensure_ascii=False, default=_json_default)


def content_hash(payload_json: str) -> str:
    return hashlib.md5(payload_json.encode("utf-8")).hexdigest()


_TYPED_DATE = re.compile(
    r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?"
    r"(?:[ T]+(\d{1,2})[:时](\d{1,2})(?:[:分](\d{1,2}(?:\.\d+)?))?秒?)?$"
)


def parse_timestamp(value: Any, tz: tzinfo = UTC) -> datetime | None:
    """Parse a source's updated-at value: ISO-8601, or dates as people type them
    (``2025/08/16 23:30``, ``2025.8.16``, ``2025年8月16日``, full-width digits).

    Values without an offset are taken in ``tz``, the source's own time zone.
    Raises ValueError for anything else.
    """
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        ts = value
    elif isinstance(value, date):
        ts = datetime(value.year, value.month, value.day)
    else:
        text = unicodedata.normalize("NFKC", str(value)).strip()
        try:
            ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            match = _TYPED_DATE.match(text)
            if not match:
                raise
            y, mo, d, h, mi, sec = match.groups()
            seconds = float(sec or 0)
            ts = datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(seconds))
    return ts if ts.tzinfo else ts.replace(tzinfo=tz)


def new_batch_id() -> str:
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


@dataclass
class LandingResult:
    source: str
    entity: str
    batch_id: str
    received: int = 0
    inserted: int = 0
    duplicates: int = 0
    quarantined: int = 0
    high_water_mark: datetime | None = None
    reasons: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["high_water_mark"] = self.high_water_mark.isoformat() if self.high_water_mark else None
        return out


def ensure_raw_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    conn.execute(OPS_DDL)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    target = sql.Identifier(schema, table)
    conn.execute(sql.SQL(RAW_DDL).format(table=target))
    conn.execute(
        sql.SQL("create unique index if not exists {} on {} (_record_id, _content_hash)").format(
            sql.Identifier(f"{table}_record_content_uq"), target
        )
    )
    conn.execute(
        sql.SQL("create index if not exists {} on {} (_loaded_at)").format(
            sql.Identifier(f"{table}_loaded_at_ix"), target
        )
    )


def land_records(
    conn: psycopg.Connection,
    *,
    source: str,
    entity: str,
    key: str,
    updated_at: str | None,
    records: Iterable[dict[str, Any]],
    batch_id: str,
    result: LandingResult | None = None,
    tz: tzinfo = UTC,
) -> LandingResult:
    """COPY one chunk of records into ``raw_<source>.<entity>`` inside the caller's transaction.

    Records without their natural key, or whose updated-at cannot be parsed, go to
    ``ops.quarantine`` with the reason; the rest of the chunk still lands.
    """
    result = result or LandingResult(source=source, entity=entity, batch_id=batch_id)
    schema = f"raw_{source}"
    loaded_at = datetime.now(UTC)
    good: list[tuple[Any, ...]] = []
    bad: list[tuple[Any, ...]] = []
    for record in records:
        result.received += 1
        payload = canonical_json(record)
        record_id = record.get(key)
        reason = None
        source_updated_at = None
        if record_id in (None, ""):
            reason = f"missing key field {key!r}"
        elif updated_at:
            try:
                source_updated_at = parse_timestamp(record.get(updated_at), tz)
            except ValueError:
                reason = f"unparseable {updated_at!r}: {record.get(updated_at)!r}"
        if reason:
            bad.append(
                (batch_id, source, entity, None if record_id is None else str(record_id), payload, reason)
            )
            result.reasons[reason.split(":")[0]] = result.reasons.get(reason.split(":")[0], 0) + 1
            continue
        if source_updated_at and (
            result.high_water_mark is None or source_updated_at > result.high_water_mark
        ):
            result.high_water_mark = source_updated_at
        good.append(
            (batch_id, loaded_at, source, str(record_id), content_hash(payload), source_updated_at, payload)
        )

    with conn.cursor() as cur:
        if bad:
            cur.executemany(
                f"insert into {OPS_SCHEMA}.quarantine "
                "(batch_id, source, entity, record_id, raw_record, reason) values (%s, %s, %s, %s, %s, %s)",
                bad,
            )
            result.quarantined += len(bad)
        if not good:
            return result
        # One staging temp table per session, emptied per chunk: COPY into it is fast, and the
        # insert below dedupes against history. (A table per chunk would pile up locks until commit.)
        cur.execute(
            sql.SQL("create temp table if not exists _landing ({}) on commit delete rows").format(
                sql.SQL(RAW_COLUMNS_DDL)
            )
        )
        cur.execute("truncate _landing")
        with cur.copy(
            sql.SQL("copy _landing ({}) from stdin").format(
                sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
            )
        ) as copy:
            for row in good:
                copy.write_row(row)
        cur.execute(
            sql.SQL(
                "insert into {} ({cols}) "
                "select distinct on (_record_id, _content_hash) {cols} from _landing "
                "order by _record_id, _content_hash "
                "on conflict (_record_id, _content_hash) do nothing"
            ).format(
                sql.Identifier(schema, entity), cols=sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
            )
        )
        inserted = cur.rowcount
    result.inserted += inserted
    result.duplicates += len(good) - inserted
    return result


def read_high_water_mark(conn: psycopg.Connection, source: str, entity: str) -> datetime | None:
    conn.execute(OPS_DDL)
    row = conn.execute(
        f"select high_water_mark from {OPS_SCHEMA}.extract_state where source = %s and entity = %s",
        (source, entity),
    ).fetchone()
    return row[0] if row else None


def record_batch(
    conn: psycopg.Connection,
    result: LandingResult,
    *,
    sync_mode: str,
    started_at: datetime,
    advance_cursor: bool,
) -> None:
    """Log the batch and, for incremental loads, advance the cursor in the same transaction."""
    conn.execute(
        f"insert into {OPS_SCHEMA}.load_batches (batch_id, source, entity, sync_mode, started_at, "
        "finished_at, received, inserted, duplicates, quarantined, high_water_mark) "
        "values (%s, %s, %s, %s, %s, now(), %s, %s, %s, %s, %s) on conflict do nothing",
        (
            result.batch_id,
            result.source,
            result.entity,
            sync_mode,
            started_at,
            result.received,
            result.inserted,
            result.duplicates,
            result.quarantined,
            result.high_water_mark,
        ),
    )
    if advance_cursor and result.high_water_mark is not None:
        conn.execute(
            f"insert into {OPS_SCHEMA}.extract_state (source, entity, high_water_mark) values (%s, %s, %s) "
            "on conflict (source, entity) do update set "
            "high_water_mark = greatest(extract_state.high_water_mark, excluded.high_water_mark), "
            "updated_at = now()",
            (result.source, result.entity, result.high_water_mark),
        )
