"""Extract a file-drop source: every pending file in its landing folder, each in its own batch.

A file is landed once, by content (``ops.loaded_files``): dropping the same file again, under
any name, archives it without landing anything. A file whose rows are mostly bad is moved to
``rejected/`` with a note of why, and the run fails once the other files are done.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from include.config import landing_dir, pii_salt
from include.extract import files
from include.extract.landing import (
    OPS_SCHEMA,
    BatchRejected,
    LandingResult,
    ensure_raw_table,
    land_records,
    new_batch_id,
    record_batch,
)
from include.registry import Entity, Source

REJECTED_DIR = "rejected"


class FilesRejected(Exception):
    """One or more dropped files were mostly bad; they are in the ``rejected/`` folder."""


def extract_files(
    source: Source, entity: Entity, warehouse_url: str, *, run_id: str | None = None
) -> LandingResult:
    run_id = run_id or f"adhoc-{uuid.uuid4().hex[:12]}"
    folder = landing_dir() / (source.landing_dir or source.name)
    batch_id = new_batch_id()
    total = LandingResult(source=source.name, entity=entity.name, batch_id=batch_id)
    rejected: list[str] = []
    started = datetime.now(UTC)
    with psycopg.connect(warehouse_url) as conn:
        ensure_raw_table(conn, source.raw_schema, entity.name)
        conn.execute(
            f"insert into {OPS_SCHEMA}.extract_runs (run_id, source, entity, sync_mode, started_at, status) "
            "values (%s, %s, %s, 'files', %s, 'running') on conflict (run_id, source, entity) do update "
            "set status = 'running', started_at = excluded.started_at",
            (run_id, source.name, entity.name, started),
        )
        conn.commit()
        for path in files.pending_files(folder, entity.file_glob or "*"):
            sha = files.file_sha256(path)
            seen = conn.execute(
                f"select file_name from {OPS_SCHEMA}.loaded_files where source = %s and sha256 = %s",
                (source.name, sha),
            ).fetchone()
            if seen:
                files.archive_file(path)  # the same content was landed before (as seen[0])
                continue
            result = LandingResult(source=source.name, entity=entity.name, batch_id=f"{batch_id}:{path.name}")
            rejects: list[tuple[str | None, str, str]] = []
            try:
                records = list(files.read_lead_file(path, entity.column_map or {}, rejects))
                land_records(
                    conn,
                    source=source.name,
                    entity=entity.name,
                    key=entity.key,
                    updated_at=entity.updated_at,
                    records=records,
                    rejects=rejects,
                    batch_id=result.batch_id,
                    result=result,
                    tz=source.tz,
                    required_any=tuple(entity.required_any),
                    protected=entity.protected,
                    pii_salt=pii_salt() if entity.protected else "",
                )
            except BatchRejected as exc:
                conn.rollback()
                _reject(path, str(exc))
                rejected.append(f"{path.name}: {exc}")
                continue
            record_batch(conn, result, sync_mode="files", started_at=started, advance_cursor=False)
            conn.execute(
                f"insert into {OPS_SCHEMA}.loaded_files (source, sha256, file_name, rows_read, rows_landed) "
                "values (%s, %s, %s, %s, %s)",
                (source.name, sha, path.name, result.received, result.inserted),
            )
            conn.commit()
            # Archive only after the commit: a crash in between re-reads the file, and the ledger
            # and landing dedupe it.
            files.archive_file(path)
            for name in ("received", "inserted", "duplicates", "quarantined"):
                setattr(total, name, getattr(total, name) + getattr(result, name))
            total.fields_seen |= result.fields_seen
        new, missing = total.drift(entity.fields)
        conn.execute(
            f"update {OPS_SCHEMA}.extract_runs set rows_read = %s, rows_landed = %s, rows_duplicate = %s, "
            "rows_quarantined = %s, new_fields = %s, missing_fields = %s, finished_at = now(), "
            "duration_s = extract(epoch from now() - started_at), status = %s, error = %s "
            "where run_id = %s and source = %s and entity = %s",
            (
                total.received,
                total.inserted,
                total.duplicates,
                total.quarantined,
                new,
                missing,
                "rejected" if rejected else "success",
                "; ".join(rejected) or None,
                run_id,
                source.name,
                entity.name,
            ),
        )
        conn.commit()
    if rejected:
        raise FilesRejected(
            f"{len(rejected)} file(s) moved to {folder / REJECTED_DIR}: " + "; ".join(rejected)
        )
    return total


def _reject(path: Path, reason: str) -> None:
    target_dir = path.parent / REJECTED_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    shutil.move(str(path), target)
    target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
