"""Target writers: send one batch of outbox rows to a target system and say what became of each.

- :class:`HttpWriter`: the bulk-write API of an HTTP system (CRM, OA, call center, marketing),
  with a client-side rate limit, tenacity retries with backoff that honour ``Retry-After``, and an
  ``Idempotency-Key`` on the request as well as on every record.
- :class:`ErpWriter`: the ERP has no API, so writes go to its PostgreSQL database in one
  transaction per batch, with the same per-record idempotency keys (kept in
  ``erp.api_idempotency_keys``) and conflict check on ``modified_time``.

A writer returns one :class:`Outcome` per row, or raises :class:`TargetUnavailable` when the target
could not be reached after its retries (nothing in the batch is then known to be applied; the
rows stay in the outbox and go again with the same keys).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
import psycopg
from psycopg import sql
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from include.push.targets import API_MODE, Mode, Target

ACTOR = "c360_sync"
RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class OutboxRow:
    outbox_id: int
    target: str
    record_key: str
    idempotency_key: str
    payload: dict[str, Any]
    expected_version: datetime | None


@dataclass(frozen=True)
class Outcome:
    status: str  # created | updated | unchanged | rejected | conflict
    error: str | None = None
    target_record_id: str | None = None
    version: str | None = None
    updated_by: str | None = None
    replayed: bool = False
    response: dict[str, Any] | None = None


class TargetUnavailable(Exception):
    """The target did not answer a batch after every retry (5xx, 429, timeouts, refused)."""


class TargetAuthRejected(TargetUnavailable):
    """The target refused our credentials (no token, a wrong or expired one): nothing was applied.

    Not retried (another try gets the same answer); like an outage, the rows stay in the outbox
    with their idempotency keys and go once the connection's token is fixed.
    """


class Writer(Protocol):
    def write(self, rows: list[OutboxRow], mode: Mode) -> list[Outcome]: ...


class _Retryable(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"{response.request.method} {response.request.url} -> {response.status_code}")
        self.response = response


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, _Retryable | httpx.TransportError)


class HttpWriter:
    def __init__(self, client: httpx.Client, target: Target, max_requests_per_second: float = 20.0) -> None:
        self.client = client
        self.target = target
        self.min_interval = 1.0 / max_requests_per_second
        self.last_call = 0.0

    def _wait(self, state: RetryCallState) -> float:
        cap = self.target.retry.max_wait_seconds
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retryable):
            retry_after = exc.response.headers.get("Retry-After", "")
            if re.fullmatch(r"\d+(\.\d+)?", retry_after):
                return min(float(retry_after), cap)
        return random.uniform(0, min(cap, 0.2 * 2 ** (state.attempt_number - 1)))

    def _post(self, body: dict[str, Any], request_key: str) -> dict[str, Any]:
        wait = self.min_interval - (time.monotonic() - self.last_call)
        if wait > 0:
            time.sleep(wait)
        self.last_call = time.monotonic()
        response = self.client.post(
            self.target.path,
            json=body,
            headers={"Idempotency-Key": request_key, "X-Actor": ACTOR},
            timeout=self.target.timeout_seconds,
        )
        if response.status_code in RETRYABLE_STATUS:
            raise _Retryable(response)
        if response.status_code in (401, 403):
            raise TargetAuthRejected(
                f"{self.target.name} refused our token ({response.status_code}): the password of Airflow "
                f"connection {self.target.conn_id} is not the target's bearer token; nothing was sent, "
                "the changes stay queued"
            )
        if response.status_code >= 400:
            # The whole request was refused (malformed): every row is rejected with the answer.
            return {"request_error": f"{response.status_code}: {response.text[:1000]}"}
        return response.json()

    def write(self, rows: list[OutboxRow], mode: Mode) -> list[Outcome]:
        if "authorization" not in self.client.headers:
            raise TargetAuthRejected(
                f"{self.target.name}: Airflow connection {self.target.conn_id} has no password (the "
                "target's bearer token); nothing was sent, the changes stay queued"
            )
        api_mode = API_MODE[mode]
        records = [
            {
                "key": None if mode == "create_only" else r.record_key,
                "idempotency_key": r.idempotency_key,
                "expected_version": r.expected_version.isoformat() if r.expected_version else None,
                "fields": r.payload,
            }
            for r in rows
        ]
        request_key = hashlib.sha256("|".join(r.idempotency_key for r in rows).encode()).hexdigest()[:40]
        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=self._wait,
            stop=stop_after_attempt(self.target.retry.attempts),
            reraise=True,
        )
        try:
            body = retrying(self._post, {"mode": api_mode, "records": records}, request_key)
        except (_Retryable, httpx.TransportError) as exc:
            raise TargetUnavailable(f"{self.target.name}: {exc}") from exc
        if "request_error" in body:
            return [Outcome("rejected", error=body["request_error"], response=body) for _ in rows]
        results = body.get("results", [])
        if len(results) != len(rows):
            raise TargetUnavailable(
                f"{self.target.name} answered {len(results)} results for {len(rows)} records"
            )
        return [
            Outcome(
                status=r["status"],
                error=r.get("error"),
                target_record_id=r.get("key"),
                version=r.get("version"),
                updated_by=r.get("updated_by"),
                replayed=bool(r.get("replayed")),
                response=r,
            )
            for r in results
        ]


ERP_IDEMPOTENCY_DDL = """
create table if not exists erp.api_idempotency_keys (
    idem_key   text primary key,
    record_key text not null,
    status     text not null,
    version    timestamptz,
    first_at   timestamptz not null default now(),
    hits       integer not null default 1
);
"""
ERP_WRITABLE = {
    "cust_name",
    "cust_type",
    "tax_no",
    "id_card_no",
    "contact_person",
    "contact_tel",
    "contact_email",
    "reg_address",
    "province",
    "city",
    "credit_limit",
}
_PHONE = re.compile(r"^\+86\d{6,12}$")


class ErpWriter:
    """Writes to ``erp.customer_master`` in the ERP's own database, one transaction per batch."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        conn.execute(ERP_IDEMPOTENCY_DDL)
        conn.commit()

    def write(self, rows: list[OutboxRow], mode: Mode) -> list[Outcome]:
        outcomes = []
        try:
            with self.conn.transaction():
                for row in rows:
                    outcomes.append(self._one(row, mode))
        except psycopg.OperationalError as exc:
            raise TargetUnavailable(f"erp_customer_master: {exc}") from exc
        return outcomes

    def _one(self, row: OutboxRow, mode: Mode) -> Outcome:
        conn = self.conn
        seen = conn.execute(
            "update erp.api_idempotency_keys set hits = hits + 1 where idem_key = %s "
            "returning record_key, status, version",
            (row.idempotency_key,),
        ).fetchone()
        if seen:
            return Outcome(
                seen[1], target_record_id=seen[0], version=seen[2] and seen[2].isoformat(), replayed=True
            )
        fields = row.payload
        unknown = set(fields) - ERP_WRITABLE
        if unknown:
            return Outcome(
                "rejected", error=f"unknown or read-only ERP field(s): {', '.join(sorted(unknown))}"
            )
        tel = fields.get("contact_tel")
        if tel is not None and not _PHONE.match(str(tel)):
            return Outcome(
                "rejected", error=f"contact_tel {tel!r} must be an E.164 number like +8613812345678"
            )
        now = datetime.now(UTC)
        if mode == "create_only":
            if not fields.get("cust_name") or not fields.get("cust_type"):
                return Outcome("rejected", error="cust_name and cust_type are required to create a customer")
            cust_no = "C360" + hashlib.sha256(row.idempotency_key.encode()).hexdigest()[:10].upper()
            cols = ["cust_no", *fields, "created_time", "modified_time"]
            conn.execute(
                sql.SQL("insert into erp.customer_master ({}) values ({})").format(
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join(sql.Placeholder() * len(cols)),
                ),
                [cust_no, *fields.values(), now, now],
            )
            outcome = Outcome("created", target_record_id=cust_no, version=now.isoformat())
        else:
            current = conn.execute(
                "select modified_time from erp.customer_master where cust_no = %s for update",
                (row.record_key,),
            ).fetchone()
            if current is None:
                return Outcome("rejected", error=f"no ERP customer {row.record_key!r} (update-only)")
            if row.expected_version is not None and current[0] > row.expected_version:
                return Outcome(
                    "conflict",
                    error=f"changed at {current[0].isoformat()} after our read at {row.expected_version}",
                    version=current[0].isoformat(),
                )
            if not fields:
                outcome = Outcome(
                    "unchanged", target_record_id=row.record_key, version=current[0].isoformat()
                )
            else:
                changed = conn.execute(
                    sql.SQL(
                        "update erp.customer_master set {}, modified_time = %s where cust_no = %s and ({}) "
                        "returning modified_time"
                    ).format(
                        sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in fields),
                        sql.SQL(" or ").join(
                            sql.SQL("{} is distinct from %s").format(sql.Identifier(k)) for k in fields
                        ),
                    ),
                    [*fields.values(), now, row.record_key, *fields.values()],
                ).fetchone()
                status = "updated" if changed else "unchanged"
                outcome = Outcome(
                    status,
                    target_record_id=row.record_key,
                    version=(changed[0] if changed else current[0]).isoformat(),
                )
        conn.execute(
            "insert into erp.api_idempotency_keys (idem_key, record_key, status, version) values "
            "(%s, %s, %s, %s)",
            (row.idempotency_key, outcome.target_record_id, outcome.status, outcome.version),
        )
        return outcome
