"""Schema drift: a source system adds or drops a field under us, without telling anyone.

``add_field("oa.customer_archive.wechat_id")`` and ``drop_field("oa.customer_archive.legal_rep")``
record the drift in the sandbox's ``state.json`` under ``"drift"``; from then on the HTTP server
serves the entity's records with the added field (a plausible value, stable per record, sometimes
null) and without the dropped one. The stored rows and the registry stay as they are: the
registry documents the contract we expect, drift is the source breaking it.

Adding a dropped registry field back undoes the drop; dropping an added field undoes the add.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from include.sandbox import phones, stores

NULL_SHARE = 0.2  # of records without a value in an added field, as with any optional field


@dataclass(frozen=True)
class TableDrift:
    added: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()


def _parse_spec(spec: str) -> tuple[stores.AppTable, str]:
    parts = spec.split(".")
    tables = stores.app_tables()
    if len(parts) != 3 or f"{parts[0]}_{parts[1]}" not in tables:
        raise ValueError(
            f"{spec!r} is not <system>.<entity>.<field> of an HTTP entity; one of: "
            + ", ".join(f"{t.system}.{t.entity}" for t in tables.values())
        )
    system, entity, field = parts
    if not re.fullmatch(r"[a-z][a-z0-9_]*", field):
        raise ValueError(f"field {field!r} must be snake_case (a-z, 0-9, _)")
    return tables[f"{system}_{entity}"], field


def _state_file(state_file: Path | None) -> Path:
    return state_file or stores.state_path()


def _read(state_file: Path) -> dict:
    if not state_file.exists():
        raise RuntimeError(
            f"No sandbox state at {state_file}: run `python -m include.sandbox generate` before drifting"
        )
    return json.loads(state_file.read_text(encoding="utf-8"))


def _change(spec: str, add: bool, state_file: Path | None) -> dict[str, TableDrift]:
    table, field = _parse_spec(spec)
    path = _state_file(state_file)
    state = _read(path)
    entry = state.setdefault("drift", {}).setdefault(table.table, {"added": [], "dropped": []})
    if add:
        if field in entry["dropped"]:
            entry["dropped"].remove(field)
        elif field in table.fields or field in entry["added"]:
            raise ValueError(f"{table.system}.{table.entity} already serves {field!r}")
        else:
            entry["added"].append(field)
    else:
        if field == table.key:
            raise ValueError(f"{field!r} is the key of {table.system}.{table.entity}; it cannot be dropped")
        if field in entry["added"]:
            entry["added"].remove(field)
        elif field not in table.fields or field in entry["dropped"]:
            raise ValueError(f"{table.system}.{table.entity} does not serve {field!r}")
        else:
            entry["dropped"].append(field)
    if not entry["added"] and not entry["dropped"]:
        del state["drift"][table.table]
        if not state["drift"]:
            del state["drift"]
    path.write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return drift_of(state)


def add_field(spec: str, state_file: Path | None = None) -> dict[str, TableDrift]:
    """Serve a new field ``<system>.<entity>.<field>`` from now on; returns all drift."""
    return _change(spec, True, state_file)


def drop_field(spec: str, state_file: Path | None = None) -> dict[str, TableDrift]:
    """Stop serving field ``<system>.<entity>.<field>``; returns all drift."""
    return _change(spec, False, state_file)


def drift_of(state: dict) -> dict[str, TableDrift]:
    return {
        table: TableDrift(tuple(d.get("added", ())), tuple(d.get("dropped", ())))
        for table, d in state.get("drift", {}).items()
    }


def read_drift(state_file: Path | None = None) -> dict[str, TableDrift]:
    """Drift per app table (``{"oa_customer_archive": TableDrift(...)}``); empty without state."""
    path = _state_file(state_file)
    return drift_of(_read(path)) if path.exists() else {}


class DriftWatcher:
    """The server's view of the drift, re-read whenever ``state.json`` changes on disk."""

    def __init__(self, state_file: Path) -> None:
        self.state_file = state_file
        self._stamp: tuple[int, int] | None = None
        self._drift: dict[str, TableDrift] = {}

    def current(self) -> dict[str, TableDrift]:
        try:
            stat = self.state_file.stat()
        except FileNotFoundError:
            return {}
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            try:
                self._drift = read_drift(self.state_file)
            except (ValueError, RuntimeError):  # half-written by a concurrent writer: keep the last view
                return self._drift
            self._stamp = stamp
        return self._drift


def added_value(table: stores.AppTable, field: str, key: str) -> str | float | None:
    """A plausible value of an added field, the same for the same record on every request."""
    digest = hashlib.sha256(f"{table.table}.{field}:{key}".encode()).digest()
    rng = random.Random(digest)
    if rng.random() < NULL_SHARE:
        return None
    token = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=10))
    name = field.lower()
    if "wechat" in name or name.startswith("wx"):
        return f"wxid_{token}"
    if any(word in name for word in ("phone", "mobile", "tel")):
        return phones.make_mobile(rng)
    if "email" in name or "mail" in name:
        return f"{token[:7]}@example.cn"
    if name.endswith(("_at", "_time", "_date")):
        moment = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        return table.fmt(moment)
    if any(word in name for word in ("amount", "score", "count", "level")):
        return float(rng.randrange(1, 100_000))
    return f"{field}-{token[:8]}"


def apply(table: stores.AppTable, rows: list[dict], drift: TableDrift | None) -> list[dict]:
    """The rows as the drifted source serves them (new dicts; the inputs are left alone)."""
    if not drift:
        return rows
    out = []
    for row in rows:
        served = {k: v for k, v in row.items() if k not in drift.dropped}
        for field in drift.added:
            served[field] = added_value(table, field, row[table.key])
        out.append(served)
    return out
