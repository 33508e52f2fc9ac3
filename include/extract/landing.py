"""Land source records in the warehouse: append-only raw tables, loaded with COPY.

Every raw table has the same shape (see ``RAW_COLUMNS``); the record itself is kept
whole in ``payload`` so a source adding a column never breaks a load. A record is
stored once per distinct content: re-running a batch, retrying a task or receiving the
same page twice inserts nothing new (unique on natural key + content hash).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import msgspec
import psycopg
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from include.identity.pii import ProtectionKind, protect_record

OPS_SCHEMA = "ops"

RAW_COLUMNS_DDL = """
    _batch_id text not null,
    _loaded_at timestamptz not null,
    _source text not null,
    _record_id text not null,
    _content_hash text not null,
    _source_updated_at timestamptz,
    _deleted boolean not null default false,
    payload jsonb not null
"""
RAW_DDL = (
    "create table if not exists {table} (_seq bigint generated always as identity, " + RAW_COLUMNS_DDL + ")"
)
RAW_COLUMNS = (
    "_batch_id",
    "_loaded_at",
    "_source",
    "_record_id",
    "_content_hash",
    "_source_updated_at",
    "_deleted",
    "payload",
)

#: A field longer than this (characters) is not a customer attribute but a broken export or an
#: attack; the row is quarantined instead of bloating every downstream model.
MAX_FIELD_CHARS = 65_536
#: Above this share of bad rows (with at least MIN_ROWS_FOR_RATIO rows) a batch is rejected whole.
MAX_BAD_RATIO = 0.5
MIN_ROWS_FOR_RATIO = 10

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
create table if not exists {OPS_SCHEMA}.extract_runs (
    run_id text not null,
    source text not null,
    entity text not null,
    sync_mode text not null,
    window_start timestamptz,
    window_end timestamptz,
    rows_read integer not null default 0,
    rows_landed integer not null default 0,
    rows_duplicate integer not null default 0,
    rows_quarantined integer not null default 0,
    rows_deleted integer not null default 0,
    new_fields text[] not null default '{{}}',
    missing_fields text[] not null default '{{}}',
    started_at timestamptz not null,
    finished_at timestamptz,
    duration_s numeric,
    status text not null check (status in ('running', 'success', 'failed', 'rejected')),
    error text,
    primary key (run_id, source, entity)
);
create table if not exists {OPS_SCHEMA}.extract_checkpoints (
    run_id text not null,
    source text not null,
    entity text not null,
    resume_token jsonb not null,
    pages_committed integer not null,
    updated_at timestamptz not null default now(),
    primary key (run_id, source, entity)
);
create table if not exists {OPS_SCHEMA}.full_sync_seen (
    run_id text not null,
    source text not null,
    entity text not null,
    record_id text not null,
    primary key (run_id, source, entity, record_id)
);
create table if not exists {OPS_SCHEMA}.loaded_files (
    source text not null,
    sha256 text not null,
    file_name text not null,
    rows_read integer not null,
    rows_landed integer not null,
    loaded_at timestamptz not null default now(),
    primary key (source, sha256)
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


def _unsupported(value: Any) -> Any:
    raise TypeError(f"cannot serialise {type(value).__name__} into a raw payload")


#: Keys sorted, Chinese kept as UTF-8, no whitespace; datetimes as RFC 3339, decimals as strings.
_ENCODER = msgspec.json.Encoder(order="sorted", enc_hook=_unsupported)


def canonical_json_bytes(record: dict[str, Any]) -> bytes:
    """The payload as stored and hashed (UTF-8)."""
    return _ENCODER.encode(record)


def canonical_json(record: dict[str, Any]) -> str:
    """The payload as stored and hashed: keys sorted, Chinese kept readable."""
    return _ENCODER.encode(record).decode("utf-8")


def content_hash(payload_json: str | bytes) -> str:
    data = payload_json.encode("utf-8") if isinstance(payload_json, str) else payload_json
    return hashlib.md5(data).hexdigest()


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
    if isinstance(value, str):
        try:  # the common case, ISO-8601 as APIs send it, without normalising first
            ts = datetime.fromisoformat(value)
            return ts if ts.tzinfo else ts.replace(tzinfo=tz)
        except ValueError:
            pass
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
    deleted: int = 0
    high_water_mark: datetime | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    fields_seen: set[str] = field(default_factory=set)
    #: per raw table, what this run knows of its history (see ``_Dedupe``)
    _dedupe: dict[tuple[str, str], _Dedupe] = field(default_factory=dict, repr=False)

    def observe_fields(self, record: dict[str, Any]) -> None:
        self.fields_seen.update(record)

    def drift(self, expected: list[str]) -> tuple[list[str], list[str]]:
        """(fields the source sent that the registry does not list, listed fields it never sent)."""
        if not self.fields_seen:
            return [], []
        return sorted(self.fields_seen - set(expected)), sorted(set(expected) - self.fields_seen)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("fields_seen", "_dedupe")}
        out["high_water_mark"] = self.high_water_mark.isoformat() if self.high_water_mark else None
        return out


class BatchRejected(Exception):
    """Most of a batch is bad: nothing of it lands, and the run fails loudly."""


def ensure_raw_table(conn: psycopg.Connection, schema: str, table: str) -> None:
    """Create (or bring up to date) the raw table and the ``ops`` tables."""
    conn.execute(OPS_DDL)
    conn.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(schema)))
    target = sql.Identifier(schema, table)
    conn.execute(sql.SQL(RAW_DDL).format(table=target))
    # Tables made by an earlier version of this module: add what it did not have.
    conn.execute(
        sql.SQL("alter table {} add column if not exists _deleted boolean not null default false").format(
            target
        )
    )
    conn.execute(
        sql.SQL("alter table {} add column if not exists _seq bigint generated always as identity").format(
            target
        )
    )
    conn.execute(
        sql.SQL("drop index if exists {}").format(sql.Identifier(schema, f"{table}_record_content_uq"))
    )
    for suffix, columns in (
        ("record_content_ix", "_record_id, _content_hash"),
        ("record_seq_ix", "_record_id, _seq desc"),
        ("loaded_at_ix", "_loaded_at"),
    ):
        conn.execute(
            sql.SQL("create index if not exists {} on {} ({})").format(
                sql.Identifier(f"{table}_{suffix}"), target, sql.SQL(columns)
            )
        )


def _clip(raw: str, limit: int = 10_000) -> str:
    """Quarantine keeps enough of a bad row to see what was wrong, not a 10 MB field."""
    return raw if len(raw) <= limit else f"{raw[:limit]}... [{len(raw) - limit:,} more characters]"


def _lock_table(cur: psycopg.Cursor, schema: str, table: str) -> None:
    """Serialise loaders of one raw table until commit, so the dedupe below cannot race."""
    cur.execute("select pg_advisory_xact_lock(hashtext(%s))", (f"{schema}.{table}",))


def _check_record(
    record: dict[str, Any],
    key: str,
    updated_at: str | None,
    required_any: tuple[str, ...],
    tz: tzinfo,
    payload: bytes,
) -> tuple[str | None, datetime | None]:
    """(reason it is bad or None, its parsed updated-at). ``payload`` is the record as JSON."""
    if record.get(key) in (None, ""):
        return f"missing key field {key!r}", None
    if len(payload) > MAX_FIELD_CHARS:  # else no field can be oversized
        for name, value in record.items():
            if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
                return (
                    f"oversized field {name!r}: {len(value):,} characters (limit {MAX_FIELD_CHARS:,})",
                    None,
                )
    if b"\\u0000" in payload and any(isinstance(v, str) and "\x00" in v for v in record.values()):
        return "NUL character in a field (PostgreSQL text cannot hold it)", None
    if required_any and all(record.get(f) in (None, "") for f in required_any):
        return f"no identifying field: all of {', '.join(required_any)} are empty", None
    if not updated_at:
        return None, None
    try:
        return None, parse_timestamp(record.get(updated_at), tz)
    except ValueError:
        return f"unparseable {updated_at!r}: {str(record.get(updated_at))[:100]!r}", None


NULL = "\\N"  # COPY text format's null
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    """A field in COPY text format (backslash, tab and line breaks escaped)."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.translate(_COPY_ESCAPES)
    return value


@dataclass
class _Dedupe:
    """What one run knows about a raw table's history, to skip asking the database per chunk.

    While the table was empty when the run began and nobody else has inserted since (the
    identity sequence still stands where this run's last COPY left it), every version in the
    table is one this run landed: ``landed`` (content hashes, which cover the key because the
    payload contains it) is then the whole history, and a chunk needs no lookup.
    """

    local: bool
    seq_mark: int | None = None
    landed: set[bytes] = field(default_factory=set)
    #: one row of the last COPY: if it is not in the table, that chunk was rolled back
    probe: tuple[str, str] | None = None


def _sequence_value(cur: psycopg.Cursor, target: sql.Composable) -> int | None:
    cur.execute(
        sql.SQL("select pg_sequence_last_value(pg_get_serial_sequence({}, '_seq'))").format(
            sql.Literal(target.as_string(cur))
        )
    )
    return cur.fetchone()[0]


def _has_version(cur: psycopg.Cursor, target: sql.Composable, record_id: str, digest: str) -> bool:
    cur.execute(
        sql.SQL("select exists (select 1 from {} where _record_id = %s and _content_hash = %s)").format(
            target
        ),
        (record_id, digest),
    )
    return cur.fetchone()[0]


def _live_versions(cur: psycopg.Cursor, target: sql.Composable, record_ids: list[str]) -> set[str]:
    """Content hashes of every version landed since each record's last tombstone."""
    cur.execute(
        sql.SQL(
            "select _record_id, _content_hash, _deleted from {} where _record_id = any(%s) "
            "order by _record_id, _seq"
        ).format(target),
        (record_ids,),
    )
    live: dict[str, set[str]] = {}
    for record_id, digest, deleted in cur:
        if deleted:
            live[record_id] = set()
        else:
            live.setdefault(record_id, set()).add(digest)
    return set().union(*live.values()) if live else set()


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
    required_any: tuple[str, ...] = (),
    rejects: Iterable[tuple[str | None, str, str]] = (),
    seen_run_id: str | None = None,
    protected: dict[str, ProtectionKind] | None = None,
    pii_salt: str = "",
) -> LandingResult:
    """COPY one chunk of records into ``raw_<source>.<entity>`` inside the caller's transaction.

    A record lands when its content differs from every version landed since its last
    tombstone: re-running a window, a retried task or a page delivered twice land nothing.
    The rows go straight into the raw table with one ``COPY``; the dedupe happens before, from
    the table's history for the chunk's keys (one index lookup per chunk), or, while this run is
    the table's only writer since it was empty, from what the run itself landed (pass the same
    ``result`` for every chunk of a run).
    Bad records (no key, oversized field, unparseable updated-at, no identifying field) go to
    ``ops.quarantine`` with the reason and the raw text; the good ones still land, unless most
    of the chunk is bad: then :class:`BatchRejected` is raised and the caller rolls back.
    ``rejects`` are rows the reader could not even parse: ``(record_id, raw text, reason)``.
    ``seen_run_id`` records every key read (full syncs use it to find deleted records).
    ``protected`` fields (personal identifiers) are replaced by their salted hash and validity
    before anything is written (include.identity.pii), quarantine included.
    """
    result = result or LandingResult(source=source, entity=entity, batch_id=batch_id)
    schema = f"raw_{source}"
    target = sql.Identifier(schema, entity)
    prefix = f"{_copy_text(batch_id)}\t{datetime.now(UTC).isoformat()}\t{_copy_text(source)}\t".encode()
    bad: list[tuple[Any, ...]] = [
        (batch_id, source, entity, rid, _clip(raw), why) for rid, raw, why in rejects
    ]
    received = len(bad)
    # the chunk's distinct contents (md5 of the payload, which holds the key) -> record id
    seen: dict[bytes, str] = {}

    def prepared() -> Iterator[tuple[bytes, bytes]]:
        """(digest, COPY line) of each good record, first occurrence in the chunk only."""
        nonlocal received
        for record in records:
            received += 1
            result.fields_seen.update(record)
            if protected:
                record = protect_record(record, protected, pii_salt)
            payload = canonical_json_bytes(record)
            reason, source_updated_at = _check_record(record, key, updated_at, required_any, tz, payload)
            record_id = record.get(key)
            if reason:
                rid = None if record_id in (None, "") else str(record_id)
                bad.append((batch_id, source, entity, rid, _clip(payload.decode()), reason))
                continue
            if source_updated_at and (
                result.high_water_mark is None or source_updated_at > result.high_water_mark
            ):
                result.high_water_mark = source_updated_at
            digest = hashlib.md5(payload).digest()
            if digest in seen:
                continue
            seen[digest] = record_id = str(record_id)
            stamp = source_updated_at.isoformat() if source_updated_at else NULL
            if b"\\" in payload:  # JSON escapes; the encoder leaves no raw tab or line break
                payload = payload.replace(b"\\", b"\\\\")
            head = f"{_copy_text(record_id)}\t{digest.hex()}\t{stamp}\tf\t"
            yield digest, b"".join((prefix, head.encode(), payload, b"\n"))

    def check_bad_share() -> None:
        for why in (b[-1] for b in bad):
            kind = why.split(":")[0]
            result.reasons[kind] = result.reasons.get(kind, 0) + 1
        result.received += received
        if received >= MIN_ROWS_FOR_RATIO and len(bad) / received > MAX_BAD_RATIO:
            raise BatchRejected(
                f"{source}.{entity}: {len(bad)} of {received} rows are bad ({dict(result.reasons)}); "
                "nothing of this batch was landed"
            )

    with conn.cursor() as cur:
        _lock_table(cur, schema, entity)
        state = _dedupe_state(cur, result, schema, entity)
        if state.local:
            # Stream: PostgreSQL parses and indexes rows while Python prepares the next ones.
            new = _copy_rows(
                cur, target, ((d, line) for d, line in prepared() if d not in state.landed), check_bad_share
            )
        else:
            lines = dict(prepared())
            check_bad_share()
            known = _live_versions(cur, target, list(set(seen.values()))) if lines else set()
            new = _copy_rows(cur, target, ((d, line) for d, line in lines.items() if d.hex() not in known))
        if bad:
            with cur.copy(
                f"copy {OPS_SCHEMA}.quarantine (batch_id, source, entity, record_id, raw_record, reason) "
                "from stdin"
            ) as copy:
                for row in bad:
                    copy.write_row(row)
            result.quarantined += len(bad)
        if seen_run_id and seen:
            cur.execute(
                f"insert into {OPS_SCHEMA}.full_sync_seen (run_id, source, entity, record_id) "
                "select %s, %s, %s, unnest(%s::text[]) on conflict do nothing",
                (seen_run_id, source, entity, list(set(seen.values()))),
            )
        if state.local and new:
            state.landed.update(new)
            state.seq_mark = _sequence_value(cur, target)
            state.probe = (seen[new[-1]], new[-1].hex())
    result.inserted += len(new)
    result.duplicates += received - len(bad) - len(new)
    return result


def _dedupe_state(cur: psycopg.Cursor, result: LandingResult, schema: str, entity: str) -> _Dedupe:
    """The run's knowledge of the table's history; call with the table's lock held."""
    target = sql.Identifier(schema, entity)
    state = result._dedupe.get((schema, entity))
    if state is None:
        cur.execute(sql.SQL("select exists (select 1 from {})").format(target))
        state = _Dedupe(local=not cur.fetchone()[0], seq_mark=_sequence_value(cur, target))
        result._dedupe[(schema, entity)] = state
    elif state.local and (
        _sequence_value(cur, target) != state.seq_mark
        or (state.probe is not None and not _has_version(cur, target, *state.probe))
    ):
        # Another writer landed rows in between, or the caller rolled back what this run
        # landed: from now on ask the table.
        state.local = False
        state.landed.clear()
    return state


#: Rows handed to the COPY at a time: big enough to amortise the call, small enough to overlap.
COPY_WRITE_ROWS = 256


def _copy_rows(
    cur: psycopg.Cursor,
    target: sql.Composable,
    rows: Iterable[tuple[bytes, bytes]],
    before_end: Callable[[], None] | None = None,
) -> list[bytes]:
    """COPY the rows' lines into ``target``; returns their digests. The COPY is opened at the first
    row (an empty chunk costs no round trip) and written from a background thread, so preparing
    rows, sending them and PostgreSQL loading them overlap. ``before_end`` runs after the last row,
    inside the COPY: raising there aborts it."""
    landed: list[bytes] = []
    cols = sql.SQL(", ").join(map(sql.Identifier, RAW_COLUMNS))
    with ExitStack() as stack:
        copy = None
        buffer: list[bytes] = []
        for digest, line in rows:
            if copy is None:
                statement = sql.SQL("copy {} ({}) from stdin").format(target, cols)
                copy = stack.enter_context(cur.copy(statement, writer=QueuedLibpqWriter(cur)))
            landed.append(digest)
            buffer.append(line)
            if len(buffer) == COPY_WRITE_ROWS:
                copy.write(b"".join(buffer))
                buffer.clear()
        if before_end:
            before_end()
        if buffer:
            copy.write(b"".join(buffer))
    return landed


def land_tombstones(
    conn: psycopg.Connection, *, source: str, entity: str, key: str, run_id: str, batch_id: str
) -> int:
    """After a complete full read: a tombstone for every live record the read did not see.

    Never drops anything: the record's history stays, its newest row says it is gone.
    """
    schema = f"raw_{source}"
    target = sql.Identifier(schema, entity)
    with conn.cursor() as cur:
        _lock_table(cur, schema, entity)
        # Fresh statistics: the seen-keys table was filled in this very run.
        cur.execute(f"analyze {OPS_SCHEMA}.full_sync_seen")
        cur.execute(sql.SQL("analyze {}").format(target))
        cur.execute(
            sql.SQL(
                "insert into {target} (_batch_id, _loaded_at, _source, _record_id, _content_hash, "
                "  _source_updated_at, _deleted, payload) "
                "select %(batch)s::text, now(), %(source)s::text, live._record_id, "
                "  md5('deleted:' || live._record_id), "
                "  now(), true, jsonb_build_object(%(key)s::text, live._record_id, '_deleted', true) "
                "from (select distinct on (_record_id) _record_id, _deleted from {target} "
                "      order by _record_id, _seq desc) live "
                "where not live._deleted and not exists ("
                "  select 1 from {ops}.full_sync_seen s where s.run_id = %(run)s and s.source = %(source)s "
                "  and s.entity = %(entity)s and s.record_id = live._record_id)"
            ).format(target=target, ops=sql.Identifier(OPS_SCHEMA)),
            {"batch": batch_id, "source": source, "key": key, "run": run_id, "entity": entity},
        )
        deleted = cur.rowcount
        cur.execute(
            f"delete from {OPS_SCHEMA}.full_sync_seen where run_id = %s and source = %s and entity = %s",
            (run_id, source, entity),
        )
    return deleted


def read_high_water_mark(conn: psycopg.Connection, source: str, entity: str) -> datetime | None:
    """The stored cursor (``ensure_raw_table`` has made the ops tables)."""
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
    log: bool = True,
) -> None:
    """Log the batch (``log``) and, for incremental loads, advance the cursor, in the caller's
    transaction: the cursor never runs ahead of the data it covers."""
    if log:
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
