"""Push golden records back to the CRM: only what changed, idempotently, rate-limited, logged.

The plan compares each CRM account with the golden record of the customer it belongs to
(``marts.customer_crosswalk`` -> ``marts.dim_customer``) against the CRM's own current values
(``staging.stg_crm__accounts``, the latest extracted version). Only fields whose standardised
values differ are sent. Every call is written to ``ops.push_log`` and every run to
``ops.push_runs``; a change already accepted by the CRM but not yet extracted back is not sent
twice, and a rejected change stays in the plan so the next run retries it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from include.extract.http_api import request_json
from include.extract.landing import OPS_SCHEMA, canonical_json, content_hash

TARGET = "crm.accounts"
ACTOR = "c360_sync"
UPSERT_PATH = "/crm/v1/accounts/bulk-upsert"

PUSH_DDL = f"""
create schema if not exists {OPS_SCHEMA};
create table if not exists {OPS_SCHEMA}.push_runs (
    run_id text primary key,
    target text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    planned integer not null,
    sent integer not null,
    accepted integer not null,
    rejected integer not null,
    already_sent integer not null
);
create table if not exists {OPS_SCHEMA}.push_log (
    run_id text not null,
    target text not null,
    record_id text not null,
    customer_key text not null,
    payload jsonb not null,
    payload_hash text not null,
    status text not null check (status in ('created', 'updated', 'unchanged', 'rejected', 'error')),
    error text,
    pushed_at timestamptz not null default now()
);
create index if not exists push_log_record_ix on {OPS_SCHEMA}.push_log (target, record_id, payload_hash);
"""

# Golden phone: the mobile when there is one, else the landline. A field is only planned when the
# golden value exists and differs from the CRM's standardised current value.
PLAN_SQL = """
with crm as (
    select account_id, coalesce(mobile_e164, phone_e164) as phone, email
    from staging.stg_crm__accounts
),
golden as (
    select x.source_record_id as account_id, d.customer_key,
           coalesce(d.mobile_e164, d.phone_e164) as phone, d.email
    from marts.customer_crosswalk x
    join marts.dim_customer d on d.customer_key = x.customer_key
    where x.source_system = 'crm'
)
select g.account_id, g.customer_key,
       case when g.phone is not null and g.phone is distinct from c.phone then g.phone end as phone,
       case when g.email is not null and g.email is distinct from c.email then g.email end as email
from golden g
join crm c using (account_id)
where (g.phone is not null and g.phone is distinct from c.phone)
   or (g.email is not null and g.email is distinct from c.email)
order by g.account_id
"""


@dataclass
class PushRun:
    run_id: str
    started_at: datetime
    planned: int = 0
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    already_sent: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("started_at", "rejections")} | {
            "rejections": self.rejections[:20]
        }


def plan_crm_account_updates(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Changed fields per CRM account: ``[{"id", "customer_key", "phone"?, "email"?}]``."""
    rows = conn.execute(PLAN_SQL).fetchall()
    plan = []
    for account_id, customer_key, phone, email in rows:
        change: dict[str, Any] = {"id": account_id, "customer_key": customer_key}
        if phone:
            change["phone"] = phone
        if email:
            change["email"] = email
        plan.append(change)
    return plan


def push_crm_accounts(
    conn: psycopg.Connection,
    client: httpx.Client,
    *,
    batch_size: int = 200,
    max_requests_per_second: float = 5.0,
) -> PushRun:
    conn.execute(PUSH_DDL)
    run = PushRun(run_id=f"push-{uuid.uuid4().hex[:12]}", started_at=datetime.now(UTC))
    plan = plan_crm_account_updates(conn)
    run.planned = len(plan)
    accepted_before = {
        (r[0], r[1])
        for r in conn.execute(
            f"select record_id, payload_hash from {OPS_SCHEMA}.push_log "
            "where target = %s and status in ('created', 'updated', 'unchanged')",
            (TARGET,),
        ).fetchall()
    }
    to_send = []
    for change in plan:
        payload = {k: v for k, v in change.items() if k != "customer_key"}
        digest = content_hash(canonical_json(payload))
        if (change["id"], digest) in accepted_before:
            run.already_sent += 1  # the CRM has it; our extract has not caught up yet
            continue
        to_send.append((change["customer_key"], payload, digest))

    min_interval = 1.0 / max_requests_per_second
    last_call = 0.0
    for start in range(0, len(to_send), batch_size):
        batch = to_send[start : start + batch_size]
        wait = min_interval - (time.monotonic() - last_call)
        if wait > 0:
            time.sleep(wait)
        last_call = time.monotonic()
        body = request_json(
            client,
            "POST",
            UPSERT_PATH,
            json={"records": [p for _, p, _ in batch]},
            headers={"X-Actor": ACTOR},
        )
        results = {r["id"]: r for r in body["results"]}
        log_rows = []
        for customer_key, payload, digest in batch:
            result = results.get(payload["id"], {"status": "error", "error": "no result returned for record"})
            status = result["status"]
            run.sent += 1
            if status in ("created", "updated", "unchanged"):
                run.accepted += 1
            else:
                run.rejected += 1
                run.rejections.append({"id": payload["id"], "error": result.get("error")})
            log_rows.append(
                (
                    run.run_id,
                    TARGET,
                    payload["id"],
                    customer_key,
                    Jsonb(payload),
                    digest,
                    status,
                    result.get("error"),
                )
            )
        with conn.cursor() as cur:
            cur.executemany(
                f"insert into {OPS_SCHEMA}.push_log (run_id, target, record_id, customer_key, payload, "
                "payload_hash, status, error) values (%s, %s, %s, %s, %s, %s, %s, %s)",
                log_rows,
            )
        conn.commit()  # the log of what the CRM accepted survives a failure in a later batch

    conn.execute(
        f"insert into {OPS_SCHEMA}.push_runs values (%s, %s, %s, now(), %s, %s, %s, %s, %s)",
        (
            run.run_id,
            TARGET,
            run.started_at,
            run.planned,
            run.sent,
            run.accepted,
            run.rejected,
            run.already_sent,
        ),
    )
    conn.commit()
    return run
