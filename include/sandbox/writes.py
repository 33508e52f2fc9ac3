"""Bulk writes into the sandbox HTTP systems, the way the sync-back flows use them.

One generic operation per writable entity (``POST <entity path>/bulk-write``)::

    {"mode": "update" | "create" | "upsert",
     "records": [{"key": "001...", "idempotency_key": "c360-crm-42",
                  "expected_version": "2026-01-01T00:00:00Z", "fields": {"phone": "+86..."}}]}

Per record, the answer is one of ``created``, ``updated``, ``unchanged`` (applied), ``rejected``
(validation failed, or an update of a record that does not exist: update-only never creates),
``conflict`` (the record changed after ``expected_version``: someone edited it since the caller
last read it) or ``replayed`` is set when the record's idempotency key was applied before (the
stored answer is returned and nothing is written again).

Idempotency keys: every applied record key is stored in ``api_idempotency_keys`` with the number
of times it was presented (``hits``), so a test can count, by key, that nothing was written twice.
Rejections and conflicts are not stored: the same key may be retried once the cause is fixed.
A whole request may also carry an ``Idempotency-Key`` header; its full response is stored in
``api_requests`` and replayed when the same header comes again.

Beyond the source registry's fields, the CRM accepts ``c360_customer_key`` and ``c360_tags``
(kept in ``crm_account_ext``, like custom fields in a real CRM), and the marketing platform keeps
a lead-status list (``mkt_lead_status``) that the lead-screening flow writes.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, Field

from include.sandbox import phones, stores

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
WriteMode = Literal["update", "create", "upsert"]

WRITE_DDL = """
create table if not exists api_idempotency_keys (
    idem_key text primary key, target text not null, record_key text, status text not null,
    result text not null, first_at text not null, hits integer not null default 1
);
create table if not exists api_requests (
    idem_key text primary key, target text not null, response text not null, hits integer not null default 1
);
create table if not exists crm_account_ext (
    account_id text primary key, c360_customer_key text, c360_tags text, updated_at text not null
);
create table if not exists mkt_lead_status (
    lead_id text primary key, status text, customer_key text, suppressed integer,
    suppression_reason text, suppressed_channels text, updated_at text not null
);
"""


class WriteRecord(BaseModel):
    key: str | None = Field(None, description="The record's id; omit to let the system assign one on create.")
    idempotency_key: str | None = Field(None, description="Same key = same change: applied at most once.")
    expected_version: str | None = Field(
        None, description="The record's updated_at as the caller last saw it; a newer one is a conflict."
    )
    fields: dict[str, Any] = Field(default_factory=dict)


class WriteRequest(BaseModel):
    mode: WriteMode = "update"
    records: list[WriteRecord] = Field(max_length=5000)


class WriteResult(BaseModel):
    key: str | None
    status: str = Field(description="created | updated | unchanged | rejected | conflict")
    error: str | None = None
    version: str | None = Field(None, description="updated_at after the write (ISO-8601, UTC)")
    updated_by: str | None = Field(None, description="on a conflict: who changed the record last")
    replayed: bool = False


class WriteResponse(BaseModel):
    results: list[WriteResult]


# phonenumbers' own pattern for Chinese mobiles: a match is a valid number in E.164 (what
# is_e164_cn checks, an order of magnitude faster); anything else gets the full check.
_CN_MOBILE_PATTERN = phonenumbers.PhoneMetadata.metadata_for_region("CN").mobile.national_number_pattern
_CN_MOBILE = re.compile(rf"\+86(?:{_CN_MOBILE_PATTERN})")


def _phone_ok(value: Any) -> bool:
    return isinstance(value, str) and (bool(_CN_MOBILE.fullmatch(value)) or phones.is_e164_cn(value))


def _email_ok(value: Any) -> bool:
    return isinstance(value, str) and bool(EMAIL_RE.match(value))


@dataclass(frozen=True)
class WriteSpec:
    """A writable entity: its table, which fields a caller may set, and how they are validated."""

    name: str
    system: str
    table: str
    key: str
    path: str
    writable: frozenset[str]
    updated_at: str = "updated_at"
    updated_by: str | None = None
    required_on_create: tuple[str, ...] = ()
    checks: dict[str, tuple[Callable[[Any], bool], str]] = field(default_factory=dict)
    ext_table: str | None = None  # extra (custom) fields kept beside the entity
    ext_fields: frozenset[str] = frozenset()
    registry_table: bool = True  # False: a table the sandbox keeps only for writes (marketing)

    def fmt(self, moment: datetime) -> str:
        return stores.app_tables()[self.table].fmt(moment) if self.registry_table else stores.cc_ts(moment)

    def columns(self) -> tuple[str, ...]:
        if self.registry_table:
            return stores.app_tables()[self.table].fields
        return (
            "lead_id",
            "status",
            "customer_key",
            "suppressed",
            "suppression_reason",
            "suppressed_channels",
            "updated_at",
        )


def _channels_ok(value: Any) -> bool:
    """A list of marketing channels (lists arrive serialised as JSON text)."""
    try:
        channels = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return False
    return isinstance(channels, list) and set(channels) <= {"email", "phone"}


PHONE = (_phone_ok, "must be an E.164 Chinese number like +8613812345678")
EMAIL = (_email_ok, "does not look like an email address")


def write_specs() -> dict[str, WriteSpec]:
    tables = stores.app_tables()
    return {
        s.name: s
        for s in (
            WriteSpec(
                name="crm_accounts",
                system="crm",
                table="crm_accounts",
                key="id",
                path=tables["crm_accounts"].path + "/bulk-write",
                writable=frozenset(
                    {"account_name", "account_type", "uscc", "id_card_no", "industry", "province", "city"}
                    | {"address", "phone", "email", "owner_sales"}
                ),
                updated_by="updated_by",
                required_on_create=("account_name",),
                checks={"phone": PHONE, "email": EMAIL},
                ext_table="crm_account_ext",
                ext_fields=frozenset({"c360_customer_key", "c360_tags"}),
            ),
            WriteSpec(
                name="oa_customer_archive",
                system="oa",
                table="oa_customer_archive",
                key="archive_id",
                path=tables["oa_customer_archive"].path + "/bulk-write",
                writable=frozenset(
                    {"customer_name", "credit_code", "legal_rep", "contact_phone", "contact_email", "address"}
                ),
                required_on_create=("customer_name",),
                checks={"contact_phone": PHONE, "contact_email": EMAIL},
            ),
            WriteSpec(
                name="oa_contract_approvals",
                system="oa",
                table="oa_contract_approvals",
                key="approval_id",
                path=tables["oa_contract_approvals"].path + "/bulk-write",
                writable=frozenset(
                    {"archive_id", "contract_no", "contract_amount", "status", "submitted_at"}
                ),
                required_on_create=("contract_no", "status"),
                checks={
                    "status": (
                        lambda v: v in ("pending", "approved", "rejected"),
                        "is not an approval status",
                    )
                },
            ),
            WriteSpec(
                name="callcenter_callers",
                system="callcenter",
                table="callcenter_callers",
                key="caller_id",
                path=tables["callcenter_callers"].path + "/bulk-write",
                writable=frozenset({"name", "phone", "alt_phone", "email", "id_card_no", "company_name"}),
                required_on_create=("phone",),
                checks={"email": EMAIL},
            ),
            WriteSpec(
                name="marketing_lead_status",
                system="marketing",
                table="mkt_lead_status",
                key="lead_id",
                path="/mkt/api/v1/lead-status/bulk-write",
                writable=frozenset(
                    {"status", "customer_key", "suppressed", "suppression_reason", "suppressed_channels"}
                ),
                required_on_create=("status",),
                checks={
                    "status": (
                        lambda v: v in ("existing_customer", "new"),
                        "must be existing_customer or new",
                    ),
                    "suppressed_channels": (_channels_ok, "must be a list of channels: email, phone"),
                },
                registry_table=False,
            ),
        )
    }


def ensure_write_tables(conn: sqlite3.Connection) -> None:
    conn.executescript(WRITE_DDL)
    # a sandbox generated before the lead status had per-channel consent
    columns = {row[1] for row in conn.execute("pragma table_info(mkt_lead_status)")}
    if "suppressed_channels" not in columns:
        conn.execute("alter table mkt_lead_status add column suppressed_channels text")
        conn.commit()


def _parse_ts(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso(value: str | None) -> str | None:
    parsed = _parse_ts(value)
    return parsed.astimezone(UTC).isoformat() if parsed else None


def _validate(spec: WriteSpec, fields: dict[str, Any]) -> str | None:
    unknown = set(fields) - spec.writable - spec.ext_fields
    if unknown:
        return f"unknown or read-only field(s): {', '.join(sorted(unknown))}"
    for name, (ok, message) in spec.checks.items():
        value = fields.get(name)
        if value is not None and not ok(value):
            return f"{name} {value!r} {message}"
    return None


def _chunks(values: list[str], size: int = 900):
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _current_many(conn: sqlite3.Connection, spec: WriteSpec, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The stored records (with their custom fields) for ``keys``, read in a few queries."""
    cols = spec.columns()
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(sorted(set(keys))):
        marks = ", ".join("?" * len(chunk))
        for row in conn.execute(
            f"select {', '.join(cols)} from {spec.table} where {spec.key} in ({marks})", chunk
        ):
            record = dict(zip(cols, row, strict=True))
            if spec.ext_table:
                record |= {"c360_customer_key": None, "c360_tags": None}
            found[record[spec.key]] = record
        if spec.ext_table:
            ext = conn.execute(
                f"select account_id, c360_customer_key, c360_tags from {spec.ext_table} "
                f"where account_id in ({marks})",
                chunk,
            )
            for account_id, customer_key, tags in ext:
                if account_id in found:
                    found[account_id] |= {"c360_customer_key": customer_key, "c360_tags": tags}
    return found


def _write_one(
    conn: sqlite3.Connection,
    spec: WriteSpec,
    mode: WriteMode,
    record: WriteRecord,
    now: datetime,
    actor: str,
    stored: dict[str, dict[str, Any]],
) -> WriteResult:
    """One record; ``stored`` holds the request's records as stored, and is kept up to date."""
    fields = {
        k: (json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else v)
        for k, v in record.fields.items()
    }
    error = _validate(spec, fields)
    if error:
        return WriteResult(key=record.key, status="rejected", error=error)
    stamp = spec.fmt(now)
    current = stored.get(record.key) if record.key else None
    if current is None:
        if mode == "update":
            return WriteResult(
                key=record.key, status="rejected", error=f"no {spec.name} record {record.key!r} (update-only)"
            )
        missing = [f for f in spec.required_on_create if not fields.get(f)]
        if missing:
            return WriteResult(
                key=record.key, status="rejected", error=f"{', '.join(missing)} required to create"
            )
        key = record.key or f"C360{os.urandom(6).hex().upper()}"
        base = {c: None for c in spec.columns()} | {k: v for k, v in fields.items() if k in spec.writable}
        base |= {spec.key: key, spec.updated_at: stamp}
        for extra in ("created_at",):
            if extra in base:
                base[extra] = stamp
        if spec.updated_by:
            base[spec.updated_by] = actor
        cols = list(base)
        conn.execute(
            f"insert into {spec.table} ({', '.join(cols)}) values ({', '.join('?' * len(cols))})",
            [base[c] for c in cols],
        )
        _write_ext(conn, spec, key, fields, stamp)
        stored[key] = base | {f: fields.get(f) for f in spec.ext_fields}
        return WriteResult(key=key, status="created", version=_iso(stamp))
    if mode == "create":
        return WriteResult(
            key=record.key, status="rejected", error=f"{spec.name} {record.key!r} exists (create-only)"
        )
    seen = _parse_ts(record.expected_version)
    now_version = _parse_ts(current[spec.updated_at])
    if seen is not None and now_version is not None and now_version > seen:
        return WriteResult(
            key=record.key,
            status="conflict",
            error=f"changed at {current[spec.updated_at]} after the read at {record.expected_version}",
            version=_iso(current[spec.updated_at]),
            updated_by=current.get(spec.updated_by) if spec.updated_by else None,
        )
    changed = {k: v for k, v in fields.items() if current.get(k) != v}
    if not changed:
        return WriteResult(key=record.key, status="unchanged", version=_iso(current[spec.updated_at]))
    main = {k: v for k, v in changed.items() if k in spec.writable}
    sets = {**main, spec.updated_at: stamp} | ({spec.updated_by: actor} if spec.updated_by else {})
    conn.execute(
        f"update {spec.table} set {', '.join(f'{k} = ?' for k in sets)} where {spec.key} = ?",
        [*sets.values(), record.key],
    )
    _write_ext(conn, spec, record.key, changed, stamp)
    current |= changed | sets
    return WriteResult(key=record.key, status="updated", version=_iso(stamp))


def _write_ext(
    conn: sqlite3.Connection, spec: WriteSpec, key: str, fields: dict[str, Any], stamp: str
) -> None:
    ext = {k: v for k, v in fields.items() if k in spec.ext_fields}
    if not spec.ext_table or not ext:
        return
    names = sorted(ext)
    conn.execute(
        f"insert into {spec.ext_table} (account_id, updated_at, {', '.join(names)}) "
        f"values (?, ?{', ?' * len(names)}) on conflict (account_id) do update set "
        + ", ".join(f"{n} = excluded.{n}" for n in ["updated_at", *names]),
        (key, stamp, *(ext[n] for n in names)),
    )


def apply_bulk(
    conn: sqlite3.Connection,
    spec: WriteSpec,
    request: WriteRequest,
    actor: str,
    request_key: str | None = None,
) -> WriteResponse:
    """Apply a bulk write in one transaction (the caller serialises writers)."""
    if request_key:
        row = conn.execute("select response from api_requests where idem_key = ?", (request_key,)).fetchone()
        if row:
            conn.execute("update api_requests set hits = hits + 1 where idem_key = ?", (request_key,))
            conn.executemany(  # each record's key was presented again too
                "update api_idempotency_keys set hits = hits + 1 where idem_key = ?",
                [(r.idempotency_key,) for r in request.records if r.idempotency_key],
            )
            conn.commit()
            return WriteResponse.model_validate_json(row[0])
    now = datetime.now(UTC).replace(microsecond=0)
    stored = _current_many(conn, spec, [r.key for r in request.records if r.key])
    idem_keys = [r.idempotency_key for r in request.records if r.idempotency_key]
    applied: dict[str, str] = {}
    for chunk in _chunks(idem_keys):
        marks = ", ".join("?" * len(chunk))
        applied |= dict(
            conn.execute(
                f"select idem_key, result from api_idempotency_keys where idem_key in ({marks})", chunk
            )
        )
    results = []
    for record in request.records:
        if record.idempotency_key in applied:
            conn.execute(
                "update api_idempotency_keys set hits = hits + 1 where idem_key = ?",
                (record.idempotency_key,),
            )
            stored_result = WriteResult.model_validate_json(applied[record.idempotency_key])
            results.append(stored_result.model_copy(update={"replayed": True}))
            continue
        result = _write_one(conn, spec, request.mode, record, now, actor, stored)
        if record.idempotency_key and result.status in ("created", "updated", "unchanged"):
            result_json = result.model_dump_json()
            conn.execute(
                "insert into api_idempotency_keys (idem_key, target, record_key, status, result, first_at) "
                "values (?, ?, ?, ?, ?, ?)",
                (record.idempotency_key, spec.name, result.key, result.status, result_json, now.isoformat()),
            )
            applied[record.idempotency_key] = result_json
        results.append(result)
    response = WriteResponse(results=results)
    if request_key:
        conn.execute(
            "insert into api_requests (idem_key, target, response) values (?, ?, ?)",
            (request_key, spec.name, response.model_dump_json()),
        )
    conn.commit()
    return response


def idempotency_counts(conn: sqlite3.Connection, target: str | None = None) -> dict[str, int]:
    """Keys applied, how often they were presented in total, and how many came more than once."""
    where, args = ("where target = ?", [target]) if target else ("", [])
    keys, hits, repeated = conn.execute(
        "select count(*), coalesce(sum(hits), 0), count(*) filter (where hits > 1) from "
        f"api_idempotency_keys {where}",
        args,
    ).fetchone()
    return {"keys": keys, "hits": hits, "repeated": repeated}
