"""The ground truth of what changed after generation (``ground_truth/changes.csv``), and hard deletes.

``changes.csv`` has one row per changed field or deleted record:
``changed_at, source_system, entity, source_record_id, field, new_value, kind`` with ``kind``
``update`` (``field`` got ``new_value``) or ``delete`` (the record was purged; ``field`` and
``new_value`` empty). The pipeline never reads it; tests and benchmarks do.
"""

from __future__ import annotations

import csv
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from include import config
from include.sandbox import stores

CHANGE_COLUMNS = ("changed_at", "source_system", "entity", "source_record_id", "field", "new_value", "kind")


def changes_path() -> Path:
    return config.ground_truth_dir() / "changes.csv"


def append_changes(rows: Iterable[tuple]) -> None:
    """Append change rows (``CHANGE_COLUMNS`` order) to ``changes.csv``, writing the header if new.

    A file from before ``kind`` existed is rewritten once with ``kind=update`` on its rows.
    """
    path = changes_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        with open(path, newline="", encoding="utf-8") as f:
            existing = list(csv.reader(f))
        if existing and tuple(existing[0]) != CHANGE_COLUMNS:
            with open(path, "w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(CHANGE_COLUMNS)
                writer.writerows([*row, "update"] for row in existing[1:])
    new_file = not path.exists() or path.stat().st_size == 0
    with open(path, "a", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        if new_file:
            writer.writerow(CHANGE_COLUMNS)
        writer.writerows(rows)


def purge(conn: sqlite3.Connection, table: stores.AppTable, ids: Iterable[str], now: datetime) -> list[tuple]:
    """Hard-delete ``ids`` from ``table`` inside the caller's transaction; returns their change rows."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    marks = ", ".join("?" * len(wanted))
    present = {
        r[0]
        for r in conn.execute(f"select {table.key} from {table.table} where {table.key} in ({marks})", wanted)
    }
    gone = [i for i in wanted if i in present]
    conn.executemany(f"delete from {table.table} where {table.key} = ?", [(i,) for i in gone])
    stamp = now.astimezone(UTC).isoformat()
    return [(stamp, table.system, table.entity, i, "", "", "delete") for i in gone]


def delete_records(
    system: str, entity: str, ids: Iterable[str], now: datetime | None = None, db_path: Path | None = None
) -> list[str]:
    """Purge records of an HTTP system (as a real system's hard delete) and record it in ``changes.csv``.

    Returns the ids that existed and are now gone (unknown ids are ignored). Nothing else is
    touched: deleting an OA archive leaves its approvals, so a test can build exactly the case it
    wants. No change event is published for deletes.
    """
    table = stores.app_tables().get(f"{system}_{entity}")
    if table is None:
        raise ValueError(
            f"{system}.{entity} is not an entity of the sandbox's HTTP systems; one of: "
            + ", ".join(f"{t.system}.{t.entity}" for t in stores.app_tables().values())
        )
    now = now or datetime.now(UTC)
    conn = stores.connect_apps(db_path)
    try:
        rows = purge(conn, table, ids, now)
        conn.commit()
    finally:
        conn.close()
    append_changes(rows)
    return [r[3] for r in rows]


#: Contact fields an agent can change, and the callers column each one is kept in (address: none,
#: the call center keeps it on the change record only).
AGENT_FIELDS = {"phone": "phone", "email": "email", "address": None}


def agent_changes_contact(
    caller_id: str,
    field: str,
    new_value: str,
    *,
    agent_id: str = "agent-sandbox",
    now: datetime | None = None,
    db_path: Path | None = None,
) -> str:
    """What a call-center agent does when a caller gives a new phone, email or address.

    In one transaction: the caller's record gets the new value and a new ``updated_at``, and a
    contact-change record (old and new value, agent) is added, as the call-center app does. The
    change goes to ``changes.csv``, and after the commit the change events are published on the
    call center's Redis channel (``include.sandbox.events``), so a consumer woken by them reads it.
    Returns the change id.
    """
    from include.sandbox.events import ChangePublisher

    if field not in AGENT_FIELDS:
        raise ValueError(f"an agent changes one of {sorted(AGENT_FIELDS)}, not {field!r}")
    now = now or datetime.now(UTC)
    stamp = stores.cc_ts(now)
    change_id = f"CHGA{now.astimezone(UTC):%Y%m%d%H%M%S%f}{caller_id[-6:]}"
    column = AGENT_FIELDS[field]
    conn = stores.connect_apps(db_path)
    try:
        row = conn.execute(
            f"select {column or 'null'} from callcenter_callers where caller_id = ?", (caller_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"the call center has no caller {caller_id!r}")
        if column:
            conn.execute(
                f"update callcenter_callers set {column} = ?, updated_at = ? where caller_id = ?",
                (new_value, stamp, caller_id),
            )
        conn.execute(
            "insert into callcenter_contact_changes"
            " (change_id, caller_id, field, old_value, new_value, agent_id, changed_at)"
            " values (?, ?, ?, ?, ?, ?, ?)",
            (change_id, caller_id, field, row[0], new_value, agent_id, stamp),
        )
        conn.commit()
    finally:
        conn.close()
    append_changes(
        [(now.astimezone(UTC).isoformat(), "callcenter", "callers", caller_id, field, new_value, "update")]
    )
    publisher = ChangePublisher.from_env()
    try:
        if column:
            publisher.publish("callcenter", "callers", [caller_id], now)
        publisher.publish("callcenter", "contact_changes", [change_id], now)
    finally:
        publisher.close()
    return change_id
