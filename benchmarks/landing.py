"""Landing throughput: ``land_records`` against ``psql \\copy`` of the same rows.

N CRM-account records (the sandbox's generated accounts, repeated with a ``-<k>`` suffix on the id so
every record is distinct) are landed into ``raw_crm.accounts`` of a fresh database with
``include.extract.landing.land_records``, in chunks of ``LAND_BATCH_ROWS`` (joined API pages), each
committed, as the extract runner does; then the batch is logged. Only the ``land_records`` calls and
the commits are timed, not building the dicts. A second pass lands the same records again (a re-run:
every chunk is checked against the table's history and nothing lands); its rate is in the details.

Baseline: the same columns (``RAW_COLUMNS``), with the same content hash and payload JSON, written
once to a file in COPY text format and loaded with ``psql -c "\\copy ..."`` into an identical empty
table (same DDL and indexes, made by ``ensure_raw_table``). The figure is rows/s; the ratio is
landing / psql.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import psycopg
from psycopg import sql

from benchmarks.common import Result, Workspace, say
from include.extract.landing import (
    RAW_COLUMNS,
    LandingResult,
    canonical_json,
    content_hash,
    ensure_raw_table,
    land_records,
    new_batch_id,
    parse_timestamp,
    record_batch,
)
from include.extract.runner import LAND_BATCH_ROWS
from include.registry import get_source

TARGET_RATIO = 0.8
BASELINE_SCHEMA = "raw_crm_psql_copy"


def records(seeds: list[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    """``n`` distinct account records, deterministic: the seeds over and over, ids suffixed per round."""
    for i in range(n):
        k, j = divmod(i, len(seeds))
        record = dict(seeds[j])
        if k:
            record["id"] = f"{record['id']}-{k}"
        yield record


def chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _copy_field(value: Any) -> str:
    """One field in COPY text format."""
    if value is None:
        return r"\N"
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


#: Columns landing fills per row; every other column of ``RAW_COLUMNS`` must be in ``constants``.
PER_ROW = ("_record_id", "_content_hash", "_source_updated_at", "payload")


def write_copy_file(path, rows: Iterator[list[dict[str, Any]]], *, key, updated_at, tz, source) -> float:
    """Write the rows ``land_records`` would COPY, in ``RAW_COLUMNS`` order; returns the seconds spent
    computing them (canonical JSON, hash, timestamp parsing: the Python work landing does per row)."""
    constants = {"_batch_id": new_batch_id(), "_loaded_at": datetime.now(UTC), "_source": source}
    constants["_deleted"] = False  # a column of the soft-delete work in progress; ignored if absent
    unknown = [c for c in RAW_COLUMNS if c not in constants and c not in PER_ROW]
    if unknown:
        raise RuntimeError(
            f"RAW_COLUMNS has columns this benchmark does not know how to fill: {unknown}; "
            "add them to benchmarks/landing.py:write_copy_file"
        )
    layout = [(PER_ROW.index(c), None) if c in PER_ROW else (None, constants[c]) for c in RAW_COLUMNS]
    prep = 0.0
    with open(path, "w", encoding="utf-8") as out:
        for chunk in rows:
            started = time.perf_counter()
            computed = []
            for record in chunk:
                payload = canonical_json(record)
                computed.append(
                    (
                        str(record[key]),
                        content_hash(payload),
                        parse_timestamp(record.get(updated_at), tz),
                        payload,
                    )
                )
            prep += time.perf_counter() - started
            out.writelines(
                "\t".join(_copy_field(row[i] if i is not None else value) for i, value in layout) + "\n"
                for row in computed
            )
    return prep


def _table_fingerprint(conn: psycopg.Connection, schema: str, table: str) -> tuple[int, str]:
    return conn.execute(
        sql.SQL(
            "select count(*), md5(string_agg(md5(_record_id || ':' || _content_hash || ':' || "
            "coalesce(_source_updated_at::text, '') || ':' || payload::text), '' "
            "order by _record_id, _content_hash)) from {}"
        ).format(sql.Identifier(schema, table))
    ).fetchone()


def run(ws: Workspace, n: int, chunk_size: int | None = None) -> Result:
    source = get_source("crm")
    entity = source.entity("accounts")
    chunk_size = chunk_size or LAND_BATCH_ROWS  # what the runner lands per commit
    seeds = ws.crm_accounts()
    url = ws.fresh_database("landing")
    with psycopg.connect(url) as conn:
        ensure_raw_table(conn, source.raw_schema, entity.name)
        ensure_raw_table(conn, BASELINE_SCHEMA, entity.name)
        conn.commit()

    # Baseline: psql \copy of the same rows from a file.
    copy_file = ws.dir / "crm_accounts.copy"
    say(f"landing: writing {n:,} rows to {copy_file.name} for the psql \\copy baseline")
    prep_s = write_copy_file(
        copy_file,
        chunks(records(seeds, n), chunk_size),
        key=entity.key,
        updated_at=entity.updated_at,
        tz=source.tz,
        source=source.name,
    )
    ws.checkpoint(url)
    say("landing: psql \\copy ...")
    path = str(copy_file).replace("'", "''")  # a psql string literal
    command = f"\\copy {BASELINE_SCHEMA}.{entity.name} ({', '.join(RAW_COLUMNS)}) from '{path}'"
    started = time.perf_counter()
    subprocess.run(["psql", url, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command], check=True)
    psql_s = time.perf_counter() - started
    file_mb = copy_file.stat().st_size / 1e6
    copy_file.unlink()

    # land_records, chunk by chunk in one transaction, as the runner does.
    ws.checkpoint(url)
    say(f"landing: land_records in chunks of {chunk_size:,} ...")
    batch_id = new_batch_id()
    result = LandingResult(source=source.name, entity=entity.name, batch_id=batch_id)
    landing_s = 0.0
    started_at = datetime.now(UTC)
    with psycopg.connect(url) as conn:
        for chunk in chunks(records(seeds, n), chunk_size):
            started = time.perf_counter()
            land_records(
                conn,
                source=source.name,
                entity=entity.name,
                key=entity.key,
                updated_at=entity.updated_at,
                records=chunk,
                batch_id=batch_id,
                result=result,
                tz=source.tz,
            )
            conn.commit()
            landing_s += time.perf_counter() - started
        started = time.perf_counter()
        record_batch(conn, result, sync_mode=entity.sync_mode, started_at=started_at, advance_cursor=True)
        conn.commit()
        landing_s += time.perf_counter() - started
        landed = _table_fingerprint(conn, source.raw_schema, entity.name)
        copied = _table_fingerprint(conn, BASELINE_SCHEMA, entity.name)

        # The same records once more, as a re-run or a full re-read does: the table has history now,
        # so every chunk is checked against it (index lookups) and nothing lands.
        say("landing: the same records again (re-run: all duplicates) ...")
        rerun = LandingResult(source=source.name, entity=entity.name, batch_id=new_batch_id())
        rerun_s = 0.0
        for chunk in chunks(records(seeds, n), chunk_size):
            started = time.perf_counter()
            land_records(
                conn,
                source=source.name,
                entity=entity.name,
                key=entity.key,
                updated_at=entity.updated_at,
                records=chunk,
                batch_id=rerun.batch_id,
                result=rerun,
                tz=source.tz,
            )
            conn.commit()
            rerun_s += time.perf_counter() - started

    landing_rate, psql_rate = n / landing_s, n / psql_s
    ratio = landing_rate / psql_rate
    return Result(
        name="landing throughput",
        figure=landing_rate,
        unit="rows/s",
        baseline=psql_rate,
        baseline_label="psql \\copy",
        ratio=ratio,
        target=f">= {TARGET_RATIO} x psql \\copy",
        met=ratio >= TARGET_RATIO,
        details={
            "records": n,
            "chunk_size": chunk_size,
            "seed_accounts": len(seeds),
            "land_records_s": round(landing_s, 3),
            "psql_copy_s": round(psql_s, 3),
            "python_prep_s": round(prep_s, 3),
            "python_prep_share_of_landing": round(prep_s / landing_s, 3),
            "copy_file_mb": round(file_mb, 1),
            "inserted": result.inserted,
            "duplicates": result.duplicates,
            "quarantined": result.quarantined,
            "rows_landed_vs_copied": [landed[0], copied[0]],
            "same_content_as_baseline": landed == copied,
            "rerun_rows_per_s": round(n / rerun_s),
            "rerun_inserted": rerun.inserted,
        },
    )
