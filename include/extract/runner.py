"""Extract one entity of one source into the warehouse: the function extract tasks call.

It takes URLs and credentials as plain arguments (the DAG resolves them from Airflow
connections at run time), so it runs and is tested without Airflow.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from include.config import landing_dir
from include.extract import database, files, http_api
from include.extract.landing import (
    LandingResult,
    ensure_raw_table,
    land_records,
    new_batch_id,
    read_high_water_mark,
    record_batch,
)
from include.registry import Entity, Source

#: Incremental reads start this far before the stored high-water mark, so a record committed
#: in the source slightly out of order with its updated_at is not missed; landing dedupes the overlap.
OVERLAP = timedelta(minutes=10)


def extract_entity(
    source: Source,
    entity: Entity,
    warehouse_url: str,
    *,
    base_url: str | None = None,
    token: str | None = None,
    source_db_url: str | None = None,
    full_refresh: bool = False,
) -> LandingResult:
    if source.kind == "files":
        return _extract_files(source, entity, warehouse_url)
    started = datetime.now(UTC)
    batch_id = new_batch_id()
    result = LandingResult(source=source.name, entity=entity.name, batch_id=batch_id)
    incremental = entity.sync_mode == "incremental" and not full_refresh
    with psycopg.connect(warehouse_url) as conn:
        ensure_raw_table(conn, source.raw_schema, entity.name)
        conn.commit()
        since = read_high_water_mark(conn, source.name, entity.name) if incremental else None
        if since is not None:
            since -= OVERLAP
        if source.kind == "http":
            if not base_url:
                raise ValueError(f"source {source.name} is an HTTP source: base_url is required")
            with http_api.make_client(base_url, token) as client:
                pages = http_api.fetch_pages(client, entity.path or "", source.pagination, since)
                for page in pages:
                    _land(conn, source, entity, page, batch_id, result)
        elif source.kind == "database":
            if not source_db_url:
                raise ValueError(f"source {source.name} is a database source: source_db_url is required")
            chunks = database.fetch_chunks(
                source_db_url,
                source.schema_ or "public",
                entity.table or entity.name,
                updated_at=entity.updated_at,
                since=since,
            )
            for chunk in chunks:
                _land(conn, source, entity, chunk, batch_id, result)
        record_batch(conn, result, sync_mode=entity.sync_mode, started_at=started, advance_cursor=incremental)
        # One commit for the data, the batch log and the cursor: the cursor never runs ahead of the data.
        conn.commit()
    return result


def _land(conn, source: Source, entity: Entity, records, batch_id: str, result: LandingResult) -> None:
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
    )


def _extract_files(source: Source, entity: Entity, warehouse_url: str) -> LandingResult:
    folder = landing_dir() / (source.landing_dir or source.name)
    batch_id = new_batch_id()
    total = LandingResult(source=source.name, entity=entity.name, batch_id=batch_id)
    with psycopg.connect(warehouse_url) as conn:
        ensure_raw_table(conn, source.raw_schema, entity.name)
        conn.commit()
        for path in files.pending_files(folder, entity.file_glob or "*"):
            started = datetime.now(UTC)
            result = LandingResult(source=source.name, entity=entity.name, batch_id=f"{batch_id}:{path.name}")
            _land(
                conn,
                source,
                entity,
                files.read_lead_file(path, entity.column_map or {}),
                result.batch_id,
                result,
            )
            record_batch(conn, result, sync_mode=entity.sync_mode, started_at=started, advance_cursor=False)
            conn.commit()
            # Archive only after the commit: a crash in between re-reads the file, and landing dedupes it.
            files.archive_file(Path(path))
            for name in ("received", "inserted", "duplicates", "quarantined"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
    return total
