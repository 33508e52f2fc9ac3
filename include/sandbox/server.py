"""One FastAPI app serving the sandbox's three HTTP systems: CRM, OA and the call center.

Each system keeps its real API's shape: CRM pages with an opaque keyset cursor, OA with page
numbers, the call center with offset/limit and a ``next`` link. All data comes from the SQLite
file the generator writes; every record is the stored row, with the registry's field names.

Auth: ``Authorization: Bearer <C360_SANDBOX_TOKEN>`` on every route except ``/health``.
Rate limit: ``C360_SANDBOX_RATE_LIMIT`` requests/second per system (token bucket; unset = off).
Faults: ``C360_SANDBOX_FAULTS`` or ``PUT /_admin/faults`` inject 500s, 429s and slow answers into
list requests (see :mod:`include.sandbox.faults`); ``C360_SANDBOX_WRITE_FAULTS`` or
``PUT /_admin/faults?scope=writes`` do the same to bulk writes (a 500 or 429 writes nothing; a
timeout writes after the sleep, so a client that gave up and retries meets its own idempotency key).
Bulk writes (``POST <entity>/bulk-write``) honour idempotency keys and detect conflicts (see
:mod:`include.sandbox.writes`).
Schema drift recorded in ``state.json`` changes the served records (see :mod:`include.sandbox.drift`).
Change events: with ``C360_SANDBOX_REDIS_URL`` set, bulk-upsert publishes the changed account ids
to Redis (see :mod:`include.sandbox.events`).
"""

from __future__ import annotations

import base64
import hmac
import json
import math
import os
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import urlencode

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, create_model

from include.sandbox import drift, phones, stores, writes
from include.sandbox.events import ChangePublisher
from include.sandbox.faults import FaultConfig, FaultInjector

WRITE_FAULTS_ENV = "C360_SANDBOX_WRITE_FAULTS"

TOKEN_ENV = "C360_SANDBOX_TOKEN"
RATE_LIMIT_ENV = "C360_SANDBOX_RATE_LIMIT"
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
CRM_WRITABLE = {
    "account_name",
    "account_type",
    "uscc",
    "id_card_no",
    "industry",
    "province",
    "city",
    "address",
    "phone",
    "email",
    "owner_sales",
}
CRM_READ_ONLY = {"created_at", "updated_at", "updated_by"}


# --- response models (for /docs and /openapi.json) ----------------------------------------------------
Record = TypeVar("Record")


def record_model(table: stores.AppTable) -> type[BaseModel]:
    """A response model with the registry's fields, so /docs shows each entity's record."""
    fields: dict[str, Any] = {
        f: (float | None if f in table.numeric else str | None, Field(None)) for f in table.fields
    }
    name = "".join(part.title() for part in table.table.split("_")) + "Record"
    return create_model(name, __doc__=f"One {table.system} {table.entity} row.", **fields)


class CrmPage(BaseModel, Generic[Record]):
    data: list[Record] = Field(description="Records ordered by (updated_at, id).")
    next_cursor: str | None = Field(description="Opaque cursor for the next page; null on the last page.")


class OaPage(BaseModel, Generic[Record]):
    items: list[Record] = Field(description="Records ordered by (updated_at, key).")
    page: int
    per_page: int
    total: int = Field(description="Rows matching the filter, over all pages.")


class CcPage(BaseModel, Generic[Record]):
    results: list[Record] = Field(description="Records ordered by (updated_at, key).")
    next: str | None = Field(description="Relative URL of the next page; null on the last page.")


class UpsertRequest(BaseModel):
    records: list[dict[str, Any]] = Field(
        description="Accounts to create or update: `id` (omit or null to create) plus writable fields.",
        examples=[[{"id": "001AbCdEfGhIjKl", "phone": "+8613812345678", "email": "li.lei@example.com"}]],
    )


class UpsertResult(BaseModel):
    id: str | None
    status: str = Field(description="created | updated | unchanged | rejected")
    error: str | None = None


class UpsertResponse(BaseModel):
    results: list[UpsertResult]


class Health(BaseModel):
    status: str
    tables: dict[str, int]


class FaultStatus(BaseModel):
    config: FaultConfig
    active: bool
    requests: int = Field(description="List requests drawn since the last configuration")
    injected: dict[str, int] = Field(description="Faults injected since then, per kind")


# --- helpers -------------------------------------------------------------------------------------------
class TokenBucket:
    """``rate`` requests/second with a burst of ``rate``; thread-safe."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def take(self) -> float:
        """0 when a request may go ahead, else seconds until one may."""
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return 0.0
            return (1 - self.tokens) / self.rate


def _since(value: str | None, table: stores.AppTable, param: str) -> str | None:
    """An ISO-8601 filter value rendered in the table's own timestamp format (so strings compare)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(
            value.replace(" ", "+") if re.search(r"\d \d\d:\d\d$", value) else value
        )
    except ValueError:
        raise HTTPException(
            422, f"{param}={value!r} is not an ISO-8601 timestamp; send e.g. 2025-01-31T00:00:00Z"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return table.fmt(parsed)


def _rows(
    conn: sqlite3.Connection, table: stores.AppTable, where: str, args: list, limit: int, offset: int = 0
):
    cols = ", ".join(table.fields)
    query = (
        f"select {cols} from {table.table} {where} order by {table.updated_at}, {table.key} limit ? offset ?"
    )
    return [dict(zip(table.fields, r, strict=True)) for r in conn.execute(query, [*args, limit, offset])]


def _encode_cursor(updated_at: str, key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, key]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        updated_at, key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return str(updated_at), str(key)
    except (ValueError, TypeError):
        raise HTTPException(400, "cursor is not one this API issued; start again without a cursor") from None


def create_app(
    token: str | None = None,
    db_path: Path | None = None,
    rate_limit: float | None = None,
    faults: FaultConfig | None = None,
    redis_url: str | None = None,
) -> FastAPI:
    """The app; ``token``, ``rate_limit``, ``faults`` and ``redis_url`` default to their environment
    variables (pass ``FaultConfig()`` for no faults whatever the environment says).

    Drift is read from ``state.json`` next to ``db_path`` (the sandbox folder).
    """
    token = token or os.environ.get(TOKEN_ENV)
    if not token:
        raise RuntimeError(
            f"{TOKEN_ENV} is not set: export a bearer token for the sandbox, e.g. {TOKEN_ENV}=dev"
        )
    if rate_limit is None and os.environ.get(RATE_LIMIT_ENV):
        rate_limit = float(os.environ[RATE_LIMIT_ENV])
    db_path = db_path or stores.apps_db_path()
    tables = stores.app_tables()
    buckets = {s: TokenBucket(rate_limit) for s in ("crm", "oa", "callcenter")} if rate_limit else {}
    local = threading.local()
    injector = FaultInjector(faults if faults is not None else FaultConfig.from_env())
    write_text = os.environ.get(WRITE_FAULTS_ENV, "").strip() if faults is None else ""
    write_injector = FaultInjector(FaultConfig.parse(write_text) if write_text else None)
    write_lock = threading.Lock()
    write_specs = writes.write_specs()
    drift_watch = drift.DriftWatcher(db_path.parent / "state.json")
    publisher = ChangePublisher(redis_url) if redis_url else ChangePublisher.from_env()

    def db() -> sqlite3.Connection:
        conn = getattr(local, "conn", None)
        if conn is None:
            if not db_path.exists():
                raise HTTPException(
                    503, f"no sandbox data at {db_path}; run `python -m include.sandbox generate`"
                )
            conn = local.conn = stores.connect_apps(db_path)
            writes.ensure_write_tables(conn)
        return conn

    def guard(system: str):
        def check(authorization: Annotated[str | None, Header(description="Bearer <token>")] = None) -> None:
            # compare_digest: the time taken does not tell a guesser how much of the token matched
            if not hmac.compare_digest((authorization or "").encode(), f"Bearer {token}".encode()):
                raise HTTPException(
                    401,
                    "missing or invalid bearer token: send 'Authorization: Bearer <token>' "
                    f"with the value of {TOKEN_ENV}",
                    headers={"WWW-Authenticate": "Bearer"},
                )
            bucket = buckets.get(system)
            wait = bucket.take() if bucket else 0.0
            if wait:
                raise HTTPException(
                    429,
                    f"rate limit of {rate_limit:g} requests/second for {system} exceeded; retry later",
                    headers={"Retry-After": str(max(1, math.ceil(wait)))},
                )

        return Depends(check)

    def inject_fault() -> None:
        """Runs after auth on list requests only: one draw of the fault sequence per request."""
        fault(injector)

    def fault(source: FaultInjector) -> None:
        outcome = source.draw()
        if outcome is None:
            return
        config = source.config
        if outcome == "timeout":
            time.sleep(config.sleep)  # then answer normally: the client decides whether to wait
            return
        if outcome == "429":
            raise HTTPException(
                429,
                "injected fault: too many requests; retry after the Retry-After seconds",
                headers={"Retry-After": f"{config.retry_after:g}", "X-Sandbox-Fault": "429"},
            )
        raise HTTPException(
            500, "injected fault: internal server error; retry later", headers={"X-Sandbox-Fault": "500"}
        )

    def served(
        table: stores.AppTable, body: dict[str, Any], records_key: str
    ) -> dict[str, Any] | JSONResponse:
        """The body as the (possibly drifted) source serves it.

        Drifted records are returned as a plain JSONResponse, because the response model (the
        registry's contract) would put dropped fields back as null and strip added ones.
        """
        table_drift = drift_watch.current().get(table.table)
        if not table_drift:
            return body
        return JSONResponse(body | {records_key: drift.apply(table, body[records_key], table_drift)})

    app = FastAPI(
        title="Customer 360 source-system sandbox",
        version="1.0",
        description=__doc__,
        openapi_tags=[
            {"name": "crm", "description": "销售CRM: accounts, contacts, opportunities (cursor pagination)."},
            {"name": "oa", "description": "OA审批: customer archive, contract approvals (page numbers)."},
            {
                "name": "callcenter",
                "description": "呼叫中心: callers, tickets, contact changes (offset/limit).",
            },
            {"name": "ops", "description": "Liveness, and the fault switch for tests."},
        ],
    )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse(
            {
                "error": {401: "unauthorized", 429: "rate_limited", 500: "internal_error"}.get(
                    exc.status_code, "bad_request"
                ),
                "detail": exc.detail,
            },
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.get("/health", tags=["ops"], summary="Liveness and row counts (no auth)", response_model=Health)
    def health() -> Health:
        conn = db()
        return Health(
            status="ok", tables={t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in tables}
        )

    @app.get(
        "/_admin/faults",
        tags=["ops"],
        summary="The current fault configuration and what it injected",
        response_model=FaultStatus,
        dependencies=[guard("admin")],
    )
    def get_faults(scope: Annotated[str, Query(pattern="^(reads|writes)$")] = "reads") -> dict[str, Any]:
        return (write_injector if scope == "writes" else injector).status()

    @app.put(
        "/_admin/faults",
        tags=["ops"],
        summary="Replace the fault configuration (restarts the seeded sequence)",
        description="Send `{}` or all probabilities 0 to turn faults off.",
        response_model=FaultStatus,
        dependencies=[guard("admin")],
    )
    def put_faults(
        config: Annotated[FaultConfig, Body()],
        scope: Annotated[
            str, Query(pattern="^(reads|writes)$", description="reads: list requests; writes: bulk writes")
        ] = "reads",
    ) -> dict[str, Any]:
        target = write_injector if scope == "writes" else injector
        target.configure(config)
        return target.status()

    @app.get(
        "/_admin/idempotency",
        tags=["ops"],
        summary="Idempotency keys applied by bulk writes: keys, times presented, keys seen twice+",
        dependencies=[guard("admin")],
    )
    def get_idempotency(target: str | None = None) -> dict[str, int]:
        return writes.idempotency_counts(db(), target)

    def bulk_write(spec: writes.WriteSpec):
        def endpoint(
            body: Annotated[writes.WriteRequest, Body()],
            x_actor: Annotated[
                str | None, Header(description="Who is writing (stored in updated_by)")
            ] = None,
            idempotency_key: Annotated[
                str | None, Header(description="Replays the stored response when sent again")
            ] = None,
        ) -> writes.WriteResponse:
            fault(write_injector)
            with write_lock:
                response = writes.apply_bulk(db(), spec, body, x_actor or "api", idempotency_key)
            if spec.system == "crm":
                changed = [
                    r.key for r in response.results if r.status in ("created", "updated") and not r.replayed
                ]
                publisher.publish("crm", "accounts", changed, datetime.now(UTC).replace(microsecond=0))
            return response

        return endpoint

    for spec in write_specs.values():
        app.post(
            spec.path,
            tags=[spec.system if spec.system != "marketing" else "ops"],
            summary=f"Bulk write {spec.name} (update, create or upsert; idempotent; conflict-checked)",
            description=writes.__doc__,
            response_model=writes.WriteResponse,
            dependencies=[guard(spec.system)],
            name=f"bulk_write_{spec.name}",
        )(bulk_write(spec))

    # CRM ----------------------------------------------------------------------------------------------
    def crm_list(table: stores.AppTable):
        def endpoint(
            updated_since: Annotated[
                str | None, Query(description="ISO-8601; rows with updated_at >= this")
            ] = None,
            page_size: Annotated[int, Query(ge=1, le=2000)] = 500,
            cursor: Annotated[str | None, Query(description="next_cursor from the previous page")] = None,
        ) -> dict[str, Any]:
            where, args = [], []
            since = _since(updated_since, table, "updated_since")
            if since:
                where.append(f"{table.updated_at} >= ?")
                args.append(since)
            if cursor:
                where.append(f"({table.updated_at}, {table.key}) > (?, ?)")
                args.extend(_decode_cursor(cursor))
            rows = _rows(db(), table, ("where " + " and ".join(where)) if where else "", args, page_size + 1)
            more = len(rows) > page_size
            rows = rows[:page_size]
            last = rows[-1] if rows else None
            next_cursor = _encode_cursor(last[table.updated_at], last[table.key]) if more and last else None
            return served(table, {"data": rows, "next_cursor": next_cursor}, "data")

        return endpoint

    for entity in ("accounts", "contacts", "opportunities"):
        t = tables[f"crm_{entity}"]
        app.get(
            t.path,
            tags=["crm"],
            response_model=CrmPage[record_model(t)],
            summary=f"List CRM {entity}",
            description=f"Keyset pagination ordered by (updated_at, {t.key}). Fields: {', '.join(t.fields)}.",
            dependencies=[guard("crm"), Depends(inject_fault)],
            name=f"crm_{entity}",
        )(crm_list(t))

    accounts = tables["crm_accounts"]

    @app.get(
        accounts.path + "/{account_id}",
        tags=["crm"],
        summary="Get one CRM account",
        dependencies=[guard("crm")],
        response_model=record_model(accounts),
    )
    def crm_account(account_id: str) -> dict[str, Any]:
        rows = _rows(db(), accounts, "where id = ?", [account_id], 1)
        if not rows:
            raise HTTPException(404, f"no CRM account with id {account_id!r}")
        table_drift = drift_watch.current().get(accounts.table)
        return JSONResponse(drift.apply(accounts, rows, table_drift)[0]) if table_drift else rows[0]

    @app.post(
        accounts.path + "/bulk-upsert",
        tags=["crm"],
        summary="Create or update CRM accounts in bulk",
        description=(
            "Each record is validated on its own: `phone` must be E.164 (+86...), `email` must look like an "
            "email, only writable fields are accepted. Stamps updated_at = now and updated_by = X-Actor."
        ),
        response_model=UpsertResponse,
        dependencies=[guard("crm")],
    )
    def crm_bulk_upsert(
        body: Annotated[UpsertRequest, Body()],
        x_actor: Annotated[str | None, Header(description="Who is writing (stored in updated_by)")] = None,
    ) -> UpsertResponse:
        conn = db()
        moment = datetime.now(UTC).replace(microsecond=0)
        now = stores.crm_ts(moment)
        results = []
        for record in body.records:
            results.append(_upsert_one(conn, record, now, x_actor or "api"))
        conn.commit()
        changed = [r.id for r in results if r.status in ("created", "updated")]
        publisher.publish("crm", "accounts", changed, moment)
        return UpsertResponse(results=results)

    # OA -----------------------------------------------------------------------------------------------
    def oa_list(table: stores.AppTable):
        def endpoint(
            page: Annotated[int, Query(ge=1)] = 1,
            per_page: Annotated[int, Query(ge=1, le=1000)] = 200,
            modified_after: Annotated[
                str | None, Query(description="ISO-8601; rows with updated_at > this")
            ] = None,
        ) -> dict[str, Any]:
            since = _since(modified_after, table, "modified_after")
            where, args = (f"where {table.updated_at} > ?", [since]) if since else ("", [])
            total = db().execute(f"select count(*) from {table.table} {where}", args).fetchone()[0]
            rows = _rows(db(), table, where, args, per_page, (page - 1) * per_page)
            return served(table, {"items": rows, "page": page, "per_page": per_page, "total": total}, "items")

        return endpoint

    for entity in ("customer_archive", "contract_approvals"):
        t = tables[f"oa_{entity}"]
        app.get(
            t.path,
            tags=["oa"],
            response_model=OaPage[record_model(t)],
            summary=f"List OA {entity.replace('_', ' ')}",
            description=f"Page-number pagination by (updated_at, {t.key}). Fields: {', '.join(t.fields)}.",
            dependencies=[guard("oa"), Depends(inject_fault)],
            name=f"oa_{entity}",
        )(oa_list(t))

    # Call center --------------------------------------------------------------------------------------
    def cc_list(table: stores.AppTable):
        def endpoint(
            since: Annotated[str | None, Query(description="ISO-8601; rows with updated_at >= this")] = None,
            offset: Annotated[int, Query(ge=0)] = 0,
            limit: Annotated[int, Query(ge=1, le=2000)] = 500,
        ) -> dict[str, Any]:
            value = _since(since, table, "since")
            where, args = (f"where {table.updated_at} >= ?", [value]) if value else ("", [])
            rows = _rows(db(), table, where, args, limit + 1, offset)
            nxt = None
            if len(rows) > limit:
                query = {"offset": offset + limit, "limit": limit} | ({"since": since} if since else {})
                nxt = f"{table.path}?{urlencode(query)}"
            return served(table, {"results": rows[:limit], "next": nxt}, "results")

        return endpoint

    for entity in ("callers", "tickets", "contact_changes"):
        t = tables[f"callcenter_{entity}"]
        app.get(
            t.path,
            tags=["callcenter"],
            response_model=CcPage[record_model(t)],
            summary=f"List call-center {entity.replace('_', ' ')}",
            description=f"Offset pagination by ({t.updated_at}, {t.key}). Fields: {', '.join(t.fields)}.",
            dependencies=[guard("callcenter"), Depends(inject_fault)],
            name=f"callcenter_{entity}",
        )(cc_list(t))

    return app


def _validate(record: dict[str, Any]) -> str | None:
    unknown = set(record) - CRM_WRITABLE - CRM_READ_ONLY - {"id"}
    if unknown:
        return f"unknown field(s): {', '.join(sorted(unknown))}"
    read_only = set(record) & CRM_READ_ONLY
    if read_only:
        return f"read-only field(s): {', '.join(sorted(read_only))}"
    phone = record.get("phone")
    if phone is not None and not (isinstance(phone, str) and phones.is_e164_cn(phone)):
        return f"phone {phone!r} is not a valid E.164 Chinese number like +8613812345678"
    email = record.get("email")
    if email is not None and not (isinstance(email, str) and EMAIL_RE.match(email)):
        return f"email {email!r} does not look like an email address"
    if record.get("account_type") not in (None, "person", "company"):
        return "account_type must be 'person' or 'company'"
    return None


def _upsert_one(conn: sqlite3.Connection, record: dict[str, Any], now: str, actor: str) -> UpsertResult:
    record_id = record.get("id")
    error = _validate(record)
    if error:
        return UpsertResult(id=record_id, status="rejected", error=error)
    fields = {k: v for k, v in record.items() if k != "id"}
    table = stores.app_tables()["crm_accounts"]
    existing = conn.execute(
        f"select {', '.join(table.fields)} from crm_accounts where id = ?", (record_id,)
    ).fetchone()
    if existing is None:
        if not fields.get("account_name"):
            return UpsertResult(
                id=record_id, status="rejected", error="account_name is required to create an account"
            )
        if record_id is None:
            record_id = "001" + os.urandom(9).hex()[:12]
        row = {f: None for f in table.fields} | fields
        row |= {"id": record_id, "created_at": now, "updated_at": now, "updated_by": actor}
        marks = ", ".join("?" * len(table.fields))
        conn.execute(
            f"insert into crm_accounts ({', '.join(table.fields)}) values ({marks})",
            [row[f] for f in table.fields],
        )
        return UpsertResult(id=record_id, status="created")
    current = dict(zip(table.fields, existing, strict=True))
    changed = {k: v for k, v in fields.items() if current[k] != v}
    if not changed:
        return UpsertResult(id=record_id, status="unchanged")
    sets = ", ".join(f"{k} = ?" for k in changed)
    conn.execute(
        f"update crm_accounts set {sets}, updated_at = ?, updated_by = ? where id = ?",
        [*changed.values(), now, actor, record_id],
    )
    return UpsertResult(id=record_id, status="updated")
