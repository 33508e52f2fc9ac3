"""Extract one entity of one source into the warehouse: the function extract tasks call.

It takes the API client or database URL as plain arguments (the DAG builds them from Airflow
connections at run time), so it runs and is tested without Airflow.

Sync modes (the registry's ``sync_mode``, per entity):

- **incremental**: read what changed since the stored high-water mark (less ``OVERLAP``), or,
  for a backfill, exactly the run's data interval. Each page is committed with its share of the
  cursor, so a retry resumes where the last one stopped.
- **full**: read everything; records the source no longer has get a tombstone row once the
  read is complete. A retry of the same run resumes from its last committed page (HTTP
  sources); a database source is re-read, the keys already seen being kept for the tombstones.

Every run of every entity leaves a row in ``ops.extract_runs`` (mode, window, counts, schema
drift, duration, status and error).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql

from include.config import pii_salt
from include.extract import database, http_api
from include.extract.landing import (
    OPS_SCHEMA,
    BatchRejected,
    LandingResult,
    ensure_raw_table,
    land_records,
    land_tombstones,
    new_batch_id,
    read_high_water_mark,
    record_batch,
)
from include.registry import Entity, Source

log = logging.getLogger(__name__)

#: Incremental reads start this far before the stored high-water mark (or the backfill window),
#: so a record committed in the source slightly out of order with its updated-at is not missed;
#: landing dedupes the overlap.
OVERLAP = timedelta(minutes=10)
#: Pages are landed and committed together once they hold this many records: a commit per
#: 500-record API page would spend more on commits than on COPY.
LAND_BATCH_ROWS = 5_000


class SourceLooksEmpty(Exception):
    """A full read returned nothing while the warehouse holds live records: refuse to delete them all."""


@dataclass(frozen=True)
class Window:
    """The slice of source changes one run reads: ``[since, until)``; ``None`` is open."""

    since: datetime | None
    until: datetime | None

    def as_token(self) -> dict[str, str | None]:
        return {k: v.isoformat() if v else None for k, v in (("since", self.since), ("until", self.until))}


def extract_entity(
    source: Source,
    entity: Entity,
    warehouse_url: str,
    *,
    client: Any = None,
    source_db_url: str | None = None,
    run_id: str | None = None,
    interval: tuple[datetime, datetime] | None = None,
    full_refresh: bool = False,
    land_batch_rows: int = LAND_BATCH_ROWS,
) -> LandingResult:
    """Land one entity. ``interval`` (a backfill's data interval) bounds an incremental read;
    ``run_id`` (Airflow's) lets a retry resume; ``full_refresh`` reads an incremental entity whole;
    pages are committed together once they hold ``land_batch_rows`` records."""
    if source.kind == "files":
        raise ValueError(f"{source.name} is a file source: use include.extract.file_drops.extract_files")
    run_id = run_id or f"adhoc-{uuid.uuid4().hex[:12]}"
    mode = "full" if entity.sync_mode == "full" or full_refresh else "incremental"
    started = datetime.now(UTC)
    batch_id = new_batch_id()
    result = LandingResult(source=source.name, entity=entity.name, batch_id=batch_id)
    salt = pii_salt() if entity.protected else ""
    with psycopg.connect(warehouse_url) as conn:
        ensure_raw_table(conn, source.raw_schema, entity.name)
        conn.commit()
        checkpoint = _read_checkpoint(conn, run_id, source, entity)
        window = _window(conn, source, entity, mode, interval, checkpoint)
        _start_run(conn, run_id, source, entity, mode, window, started)
        try:
            pages = _pages(source, entity, client, source_db_url, window, checkpoint)
            for records, token in _batched(pages, land_batch_rows):
                land_records(
                    conn,
                    source=source.name,
                    entity=entity.name,
                    key=entity.key,
                    updated_at=entity.updated_at,
                    records=records,
                    batch_id=batch_id,
                    result=result,
                    tz=source.tz,
                    required_any=tuple(entity.required_any),
                    seen_run_id=run_id if mode == "full" else None,
                    protected=entity.protected,
                    pii_salt=salt,
                )
                if token is not None:
                    _write_checkpoint(conn, run_id, source, entity, {**window.as_token(), "page": token})
                if mode == "incremental" and interval is None:
                    # Pages come oldest change first: committing the cursor with the page is safe.
                    record_batch(
                        conn, result, sync_mode=mode, started_at=started, advance_cursor=True, log=False
                    )
                conn.commit()
            if mode == "full":
                result.deleted = _tombstones(conn, source, entity, run_id, batch_id, result)
            _clear_checkpoint(conn, run_id, source, entity)
            # A full refresh of an incremental entity read everything: its cursor may move too.
            advance = entity.sync_mode == "incremental" and interval is None
            record_batch(conn, result, sync_mode=mode, started_at=started, advance_cursor=advance)
            _finish_run(conn, run_id, result, entity, "success", None)
            conn.commit()
        except Exception as exc:
            conn.rollback()
            status = "rejected" if isinstance(exc, (BatchRejected, SourceLooksEmpty)) else "failed"
            _finish_run(conn, run_id, result, entity, status, f"{type(exc).__name__}: {exc}")
            conn.commit()
            raise
    new, missing = result.drift(entity.fields)
    if new or missing:
        log.warning(
            "%s.%s schema drift: new fields %s, missing fields %s", source.name, entity.name, new, missing
        )
    return result


def _window(
    conn: psycopg.Connection,
    source: Source,
    entity: Entity,
    mode: str,
    interval: tuple[datetime, datetime] | None,
    checkpoint: dict[str, Any] | None,
) -> Window:
    if checkpoint:  # a retry reads the same window it started
        return Window(
            *(datetime.fromisoformat(checkpoint[k]) if checkpoint[k] else None for k in ("since", "until"))
        )
    if mode == "full":
        return Window(None, None)
    if interval is not None:
        return Window(interval[0] - OVERLAP, interval[1])
    mark = read_high_water_mark(conn, source.name, entity.name)
    return Window(mark - OVERLAP if mark else None, None)


def _pages(
    source: Source,
    entity: Entity,
    client: Any,
    source_db_url: str | None,
    window: Window,
    checkpoint: dict[str, Any] | None,
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    if source.kind == "http":
        if client is None:
            raise ValueError(f"source {source.name} is an HTTP source: pass an API client")
        yield from http_api.fetch_pages(
            client,
            entity.path or "",
            source.pagination,
            window.since,
            resume=(checkpoint or {}).get("page"),
            until=window.until,
            updated_at=entity.updated_at,
        )
    elif source.kind == "database":
        if not source_db_url:
            raise ValueError(f"source {source.name} is a database source: pass source_db_url")
        chunks: Iterable[list[dict[str, Any]]] = database.fetch_chunks(
            source_db_url,
            source.schema_ or "public",
            entity.table or entity.name,
            updated_at=entity.updated_at,
            since=window.since,
            until=window.until,
        )
        for chunk in chunks:
            yield chunk, None


def _batched(
    pages: Iterable[tuple[list[dict[str, Any]], dict[str, Any] | None]], min_rows: int
) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any] | None]]:
    """Join consecutive pages until they hold ``min_rows`` records; the token is the last page's
    (where a retry resumes once the joined pages are committed)."""
    records: list[dict[str, Any]] = []
    token: dict[str, Any] | None = None
    for page, page_token in pages:
        records.extend(page)
        token = page_token
        if len(records) >= min_rows:
            yield records, token
            records, token = [], None
    if records or token is not None:
        yield records, token


def _tombstones(
    conn: psycopg.Connection,
    source: Source,
    entity: Entity,
    run_id: str,
    batch_id: str,
    result: LandingResult,
) -> int:
    if result.received == 0:
        live = conn.execute(
            sql.SQL(
                "select count(*) from (select distinct on (_record_id) _deleted "
                "from {} order by _record_id, _seq desc) v where not _deleted"
            ).format(sql.Identifier(source.raw_schema, entity.name))
        ).fetchone()[0]
        if live:
            raise SourceLooksEmpty(
                f"{source.name}.{entity.name}: the full read returned no records but {live} are live in the "
                "warehouse; not marking them deleted. Check the source, then re-run."
            )
    return land_tombstones(
        conn, source=source.name, entity=entity.name, key=entity.key, run_id=run_id, batch_id=batch_id
    )


def _read_checkpoint(conn: psycopg.Connection, run_id: str, source: Source, entity: Entity) -> dict | None:
    row = conn.execute(
        f"select resume_token from {OPS_SCHEMA}.extract_checkpoints "
        "where run_id = %s and source = %s and entity = %s",
        (run_id, source.name, entity.name),
    ).fetchone()
    return row[0] if row else None


def _write_checkpoint(conn, run_id: str, source: Source, entity: Entity, token: dict) -> None:
    conn.execute(
        f"insert into {OPS_SCHEMA}.extract_checkpoints "
        "(run_id, source, entity, resume_token, pages_committed) values (%s, %s, %s, %s, 1) "
        "on conflict (run_id, source, entity) do update set "
        "resume_token = excluded.resume_token, pages_committed = extract_checkpoints.pages_committed + 1, "
        "updated_at = now()",
        (run_id, source.name, entity.name, json.dumps(token)),
    )


def _clear_checkpoint(conn, run_id: str, source: Source, entity: Entity) -> None:
    conn.execute(
        f"delete from {OPS_SCHEMA}.extract_checkpoints where run_id = %s and source = %s and entity = %s",
        (run_id, source.name, entity.name),
    )


def _start_run(conn, run_id: str, source: Source, entity: Entity, mode: str, window: Window, started) -> None:
    conn.execute(
        f"insert into {OPS_SCHEMA}.extract_runs "
        "(run_id, source, entity, sync_mode, window_start, window_end, started_at, status) "
        "values (%s, %s, %s, %s, %s, %s, %s, 'running') "
        "on conflict (run_id, source, entity) do update set status = 'running', "
        "started_at = excluded.started_at, error = null, finished_at = null",
        (run_id, source.name, entity.name, mode, window.since, window.until, started),
    )
    conn.commit()


def _finish_run(
    conn, run_id: str, result: LandingResult, entity: Entity, status: str, error: str | None
) -> None:
    new, missing = result.drift(entity.fields)
    conn.execute(
        f"update {OPS_SCHEMA}.extract_runs set rows_read = %s, rows_landed = %s, rows_duplicate = %s, "
        "rows_quarantined = %s, rows_deleted = %s, new_fields = %s, missing_fields = %s, "
        "finished_at = now(), duration_s = extract(epoch from now() - started_at), status = %s, error = %s "
        "where run_id = %s and source = %s and entity = %s",
        (
            result.received,
            result.inserted,
            result.duplicates,
            result.quarantined,
            result.deleted,
            new,
            missing,
            status,
            error,
            run_id,
            result.source,
            result.entity,
        ),
    )
