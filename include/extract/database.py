"""Read a table from a source database in chunks through a server-side cursor."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row


def fetch_chunks(
    source_url: str,
    schema: str,
    table: str,
    *,
    updated_at: str | None,
    since: datetime | None,
    until: datetime | None = None,
    chunk_size: int = 5_000,
) -> Iterator[list[dict[str, Any]]]:
    """Yield rows as dicts, ``chunk_size`` at a time; memory stays bounded by one chunk."""
    query = sql.SQL("select * from {}").format(sql.Identifier(schema, table))
    conditions, params = [], []
    if updated_at and since is not None:
        conditions.append(sql.SQL("{} >= %s").format(sql.Identifier(updated_at)))
        params.append(since)
    if updated_at and until is not None:
        conditions.append(sql.SQL("{} < %s").format(sql.Identifier(updated_at)))
        params.append(until)
    if conditions:
        query += sql.SQL(" where ") + sql.SQL(" and ").join(conditions)
    if updated_at:
        query += sql.SQL(" order by {}").format(sql.Identifier(updated_at))
    with psycopg.connect(source_url) as conn:
        conn.read_only = True  # an extract never writes to the source system
        with conn.cursor(name=f"c360_extract_{table}", row_factory=dict_row) as cur:
            cur.itersize = chunk_size
            cur.execute(query, params)
            while rows := cur.fetchmany(chunk_size):
                yield rows
