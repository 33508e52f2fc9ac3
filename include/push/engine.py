"""The sync-back engine: plan -> outbox -> send -> acknowledge, for any flow of the target registry.

1. **Plan** (:func:`plan_flow`): the flow's planner gives the desired payload per target record.
   Its hash (``md5`` of the canonical ``jsonb`` text) is compared, in SQL, with the hash the target
   last acknowledged (``ops.sync_state``); only changed records are queued in ``ops.sync_outbox``.
   An unchanged rerun queues nothing. A newer change supersedes a queued one that was never sent.
2. **Send** (:func:`send_flow`): queued rows (and rejected rows not yet given up on) go to the
   target in batches, each row with its idempotency key ``c360:<flow>:<target>:<outbox id>:<payload
   hash>``, so a retry after a timeout never applies a change twice (and a rebuilt warehouse, whose
   outbox ids start again, never has a new change taken for an old one). A row leaves the outbox only when the
   target acknowledges it; a target down for the whole run leaves everything queued for the next.
3. **Outcomes**: acknowledged rows update ``ops.sync_state``; per-row errors land in
   ``ops.sync_rejects`` with the target's answer (retried once per later run, up to the flow's
   ``max_reject_attempts``); a target record changed after our last read becomes a row of
   ``ops.sync_conflicts`` instead of being overwritten, and is planned again once we have re-read it.
4. **History**: one ``ops.sync_runs`` row per flow per run.

**Dry run**: the plan runs in a transaction that is rolled back; the run reports what would be
sent (per target, with a sample) and sends nothing.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from include.push.flows import PLANNERS
from include.push.targets import Flow
from include.push.writers import OutboxRow, Outcome, TargetUnavailable, Writer

OPS_DDL = """
create schema if not exists ops;
create table if not exists ops.sync_outbox (
    id               bigserial primary key,
    flow             text not null,
    target           text not null,
    record_key       text not null,
    customer_key     text,
    payload          jsonb not null,
    payload_hash     text not null,
    expected_version timestamptz,
    status           text not null default 'pending'
        check (status in ('pending', 'acked', 'rejected', 'conflict', 'superseded', 'dead')),
    attempts         integer not null default 0,
    last_error       text,
    last_run_id      text,
    enqueued_at      timestamptz not null default now(),
    updated_at       timestamptz not null default now()
);
create index if not exists sync_outbox_open_ix on ops.sync_outbox (flow, target, record_key)
    where status in ('pending', 'rejected');
create table if not exists ops.sync_state (
    flow             text not null,
    target           text not null,
    record_key       text not null,
    target_record_id text,
    acked_hash       text not null,
    acked_payload    jsonb not null,
    target_version   timestamptz,
    acked_at         timestamptz not null,
    primary key (flow, target, record_key)
);
create table if not exists ops.sync_rejects (
    id          bigserial primary key,
    run_id      text not null,
    flow        text not null,
    target      text not null,
    record_key  text not null,
    outbox_id   bigint not null,
    payload     jsonb not null,
    error       text,
    response    jsonb,
    attempt     integer not null,
    rejected_at timestamptz not null default now(),
    resolved_at timestamptz
);
create index if not exists sync_rejects_open_ix on ops.sync_rejects (flow, target, record_key) where
    resolved_at is null;
create table if not exists ops.sync_conflicts (
    id               bigserial primary key,
    run_id           text not null,
    flow             text not null,
    target           text not null,
    record_key       text not null,
    outbox_id        bigint not null,
    payload          jsonb not null,
    payload_hash     text not null,
    expected_version timestamptz,
    target_version   timestamptz,
    target_updated_by text,
    detail           text,
    detected_at      timestamptz not null default now(),
    resolved_at      timestamptz,
    resolution       text
);
create index if not exists sync_conflicts_open_ix on ops.sync_conflicts (flow, target, record_key)
    where resolved_at is null;
create table if not exists ops.sync_runs (
    run_id             text primary key,
    flow               text not null,
    dry_run            boolean not null,
    started_at         timestamptz not null,
    finished_at        timestamptz,
    considered         integer not null default 0,
    skipped_unchanged  integer not null default 0,
    queued             integer not null default 0,
    sent               integer not null default 0,
    succeeded          integer not null default 0,
    rejected           integer not null default 0,
    conflicts          integer not null default 0,
    replayed           integer not null default 0,
    unavailable        integer not null default 0,
    duration_seconds   numeric(10, 3),
    status             text not null default 'running',
    detail             jsonb
);
create table if not exists ops.erasure_requests (
    request_id    text primary key,
    customer_key  text not null,
    reason        text not null,
    requested_at  timestamptz not null default now(),
    warehouse_erased_at timestamptz
);
create table if not exists ops.erasure_tombstones (
    customer_key     text not null,
    source_system    text not null,
    source_record_id text not null,
    primary key (source_system, source_record_id)
);
create table if not exists ops.contact_suppressions (
    contact     text not null,
    reason      text not null check (reason in ('unsubscribed', 'no_consent', 'erasure', 'complaint')),
    recorded_at timestamptz not null default now(),
    primary key (contact, reason)
);
"""

APPLIED = {"created", "updated", "unchanged"}


def ensure_ops(conn: psycopg.Connection) -> None:
    conn.execute("select pg_advisory_xact_lock(hashtext('c360.sync_ops_ddl'))")
    conn.execute(OPS_DDL)
    conn.commit()


@dataclass
class PlanResult:
    run_id: str
    flow: str
    dry_run: bool
    considered: int = 0
    skipped_unchanged: int = 0
    queued: int = 0
    waiting_on_conflict: int = 0
    would_send: dict[str, int] = field(default_factory=dict)
    sample: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SendResult:
    target: str
    sent: int = 0
    succeeded: int = 0
    rejected: int = 0
    conflicts: int = 0
    replayed: int = 0
    unavailable: int = 0
    error: str | None = None
    statuses: dict[str, int] = field(default_factory=dict)


def new_run_id(flow: Flow) -> str:
    return f"{flow.name}-{uuid.uuid4().hex[:12]}"


def start_run(conn: psycopg.Connection, run_id: str, flow: Flow, dry_run: bool) -> None:
    conn.execute(
        "insert into ops.sync_runs (run_id, flow, dry_run, started_at) values (%s, %s, %s, now()) "
        "on conflict (run_id) do nothing",
        (run_id, flow.name, dry_run),
    )
    conn.commit()


def _stage_plan(conn: psycopg.Connection, flow: Flow) -> int:
    planner = PLANNERS[flow.planner](flow)
    payload = sql.SQL("p.payload" if flow.nulls_overwrite else "jsonb_strip_nulls(p.payload)")
    conn.execute("drop table if exists _plan")
    conn.execute(
        sql.SQL(
            """
create temp table _plan on commit drop as
select target, record_key, customer_key, payload, md5(payload::text) as payload_hash, expected_version
from (select p.target, p.record_key, p.customer_key, {payload} as payload, p.expected_version
      from ({planner}) p) q
where record_key is not null
"""
        ).format(payload=payload, planner=planner)
    )
    try:
        with conn.transaction():
            conn.execute("create unique index on _plan (target, record_key)")
    except psycopg.errors.UniqueViolation as exc:
        raise ValueError(
            f"planner {flow.planner} of flow {flow.name} gave one target record two payloads; "
            f"it must return one row per (target, record_key): {exc.diag.message_detail}"
        ) from None
    conn.execute("analyze _plan")
    unknown = conn.execute(
        "select distinct target from _plan where not (target = any(%s))", (flow.targets,)
    ).fetchall()
    if unknown:
        raise ValueError(
            f"planner {flow.planner} produced targets {unknown} that flow {flow.name} does not declare"
        )
    return conn.execute("select count(*) from _plan").fetchone()[0]


def plan_flow(conn: psycopg.Connection, flow: Flow, run_id: str, *, dry_run: bool = False) -> PlanResult:
    """Queue every record whose desired payload differs from what its target last acknowledged."""
    result = PlanResult(run_id=run_id, flow=flow.name, dry_run=dry_run)
    params = {
        "flow": flow.name,
        "create_only": [t for t in flow.targets if flow.mode_for(t) == "create_only"],
    }
    try:
        # Hash joins and the plan's index over a million records fit in memory instead of spilling.
        conn.execute("set local work_mem = '256MB'")
        conn.execute("set local maintenance_work_mem = '256MB'")
        result.considered = _stage_plan(conn, flow)
        # Conflict checks compare with our last read of the record, or with the version our own
        # last acknowledged write produced when that is newer (we have not re-extracted it yet).
        conn.execute(
            """
update _plan p set expected_version = s.target_version
from ops.sync_state s
where s.flow = %(flow)s and s.target = p.target and s.record_key = p.record_key
  and p.expected_version is not null and s.target_version > p.expected_version
""",
            params,
        )
        conn.execute(
            """
create temp table _changed on commit drop as
select p.* from _plan p
left join ops.sync_state s on s.flow = %(flow)s and s.target = p.target and s.record_key = p.record_key
where (s.acked_hash is null or s.acked_hash <> p.payload_hash)
  and not (s.record_key is not null and p.target = any(%(create_only)s))
""",
            params,
        )
        changed = conn.execute("select count(*) from _changed").fetchone()[0]
        result.skipped_unchanged = result.considered - changed
        # We have re-read a record that was in conflict, or want something else for it now.
        conn.execute(
            """
update ops.sync_conflicts k set resolved_at = now(),
       resolution = case when c.payload_hash <> k.payload_hash then 'new payload planned'
                         else 'target re-read' end
from _changed c
where k.flow = %(flow)s and k.target = c.target and k.record_key = c.record_key and k.resolved_at is null
  and (c.payload_hash <> k.payload_hash or c.expected_version >= k.target_version)
""",
            params,
        )
        conn.execute(
            """
update ops.sync_outbox o set status = 'superseded', updated_at = now()
from _changed c
where o.flow = %(flow)s and o.target = c.target and o.record_key = c.record_key
  and o.status in ('pending', 'rejected') and o.payload_hash <> c.payload_hash
""",
            params,
        )
        conn.execute(
            """
update ops.sync_outbox o set expected_version = c.expected_version, updated_at = now()
from _changed c
where o.flow = %(flow)s and o.target = c.target and o.record_key = c.record_key
  and o.status in ('pending', 'rejected') and o.expected_version is distinct from c.expected_version
""",
            params,
        )
        result.waiting_on_conflict = conn.execute(
            """
select count(*) from _changed c where exists (
    select 1 from ops.sync_conflicts k where k.flow = %(flow)s and k.target = c.target
      and k.record_key = c.record_key and k.resolved_at is null)
""",
            params,
        ).fetchone()[0]
        result.queued = conn.execute(
            """
insert into ops.sync_outbox (flow, target, record_key, customer_key, payload, payload_hash, expected_version)
select %(flow)s, c.target, c.record_key, c.customer_key, c.payload, c.payload_hash, c.expected_version
from _changed c
where not exists (select 1 from ops.sync_outbox o where o.flow = %(flow)s and o.target = c.target
                    and o.record_key = c.record_key and o.status in ('pending', 'rejected'))
  and not exists (select 1 from ops.sync_conflicts k where k.flow = %(flow)s and k.target = c.target
                    and k.record_key = c.record_key and k.resolved_at is null)
order by c.target, c.record_key
""",
            params,
        ).rowcount
        pending = conn.execute(
            "select target, count(*) from ops.sync_outbox where flow = %s and "
            "(status = 'pending' or (status = 'rejected' and attempts < %s)) group by target order by target",
            (flow.name, flow.max_reject_attempts),
        ).fetchall()
        result.would_send = {t: n for t, n in pending}
        if dry_run:
            result.sample = [
                {"target": t, "record_key": k, "payload": p}
                for t, k, p in conn.execute(
                    "select target, record_key, payload from ops.sync_outbox where flow = %s and "
                    "status = 'pending' "
                    "order by id limit 20",
                    (flow.name,),
                ).fetchall()
            ]
    except BaseException:
        conn.rollback()
        raise
    if dry_run:
        conn.rollback()  # report only: nothing is queued, so nothing is sent
    else:
        conn.commit()
    conn.execute(
        """
update ops.sync_runs set considered = %s, skipped_unchanged = %s, queued = %s,
       detail = coalesce(detail, '{}'::jsonb) || %s
where run_id = %s
""",
        (
            result.considered,
            result.skipped_unchanged,
            result.queued,
            Jsonb(
                {"would_send": result.would_send, "waiting_on_conflict": result.waiting_on_conflict}
                | ({"sample": result.sample} if dry_run else {})
            ),
            run_id,
        ),
    )
    conn.commit()
    return result


def _pending(conn: psycopg.Connection, flow: Flow, target: str, limit: int | None) -> list[OutboxRow]:
    rows = conn.execute(
        """
select id, target, record_key, payload, payload_hash, expected_version from ops.sync_outbox
where flow = %s and target = %s and (status = 'pending' or (status = 'rejected' and attempts < %s))
order by id limit %s
""",
        (flow.name, target, flow.max_reject_attempts, limit),
    ).fetchall()
    return [
        OutboxRow(
            outbox_id=i,
            target=t,
            record_key=k,
            # the payload's hash too: a rebuilt warehouse numbers its outbox from 1 again, and the
            # target, which keeps the keys it applied, would take a new change for a replay
            idempotency_key=f"c360:{flow.name}:{t}:{i}:{h[:12]}",
            payload=p,
            expected_version=v,
        )
        for i, t, k, p, h, v in rows
    ]


def _record(
    conn: psycopg.Connection, flow: Flow, run_id: str, rows: list[OutboxRow], outcomes: list[Outcome]
) -> None:
    """Write one batch's outcomes: outbox, state, rejects, conflicts; committed together."""
    acked = [(r, o) for r, o in zip(rows, outcomes, strict=True) if o.status in APPLIED]
    rejected = [(r, o) for r, o in zip(rows, outcomes, strict=True) if o.status not in APPLIED | {"conflict"}]
    conflicts = [(r, o) for r, o in zip(rows, outcomes, strict=True) if o.status == "conflict"]
    with conn.cursor() as cur:
        if acked:
            ids = [r.outbox_id for r, _ in acked]
            cur.execute(
                """
with done as (
    update ops.sync_outbox o set status = 'acked', attempts = attempts + 1, last_run_id = %s,
           last_error = null, updated_at = now()
    where o.id = any(%s)
    returning o.id, o.target, o.record_key, o.payload, o.payload_hash
),
results as (
    select * from unnest(%s::bigint[], %s::text[], %s::timestamptz[]) as r(id, target_record_id, version)
)
insert into ops.sync_state as s (flow, target, record_key, target_record_id, acked_hash, acked_payload,
                                 target_version, acked_at)
select %s, d.target, d.record_key, r.target_record_id, d.payload_hash, d.payload, r.version, now()
from done d join results r using (id)
on conflict (flow, target, record_key) do update set
    target_record_id = coalesce(excluded.target_record_id, s.target_record_id),
    acked_hash = excluded.acked_hash, acked_payload = excluded.acked_payload,
    target_version = excluded.target_version, acked_at = excluded.acked_at
""",
                (
                    run_id,
                    ids,
                    ids,
                    [o.target_record_id for _, o in acked],
                    [o.version for _, o in acked],
                    flow.name,
                ),
            )
            cur.execute(
                "update ops.sync_rejects j set resolved_at = now() from ops.sync_outbox o "
                "where o.id = any(%s) and j.flow = o.flow and j.target = o.target and j.record_key = "
                "o.record_key "
                "and j.resolved_at is null",
                (ids,),
            )
        if rejected:
            ids = [r.outbox_id for r, _ in rejected]
            cur.execute(
                """
update ops.sync_outbox o set status = case when attempts + 1 >= %s then 'dead' else 'rejected' end,
       attempts = attempts + 1, last_run_id = %s, last_error = r.error, updated_at = now()
from unnest(%s::bigint[], %s::text[]) as r(id, error)
where o.id = r.id
""",
                (flow.max_reject_attempts, run_id, ids, [o.error for _, o in rejected]),
            )
            cur.executemany(
                "insert into ops.sync_rejects (run_id, flow, target, record_key, outbox_id, payload, "
                "error, response, "
                "attempt) select %s, %s, target, record_key, id, payload, %s, %s, attempts from "
                "ops.sync_outbox "
                "where id = %s",
                [(run_id, flow.name, o.error, Jsonb(o.response), r.outbox_id) for r, o in rejected],
            )
        if conflicts:
            cur.execute(
                "update ops.sync_outbox set status = 'conflict', attempts = attempts + 1, last_run_id = %s, "
                "updated_at = now() where id = any(%s)",
                (run_id, [r.outbox_id for r, _ in conflicts]),
            )
            cur.executemany(
                "insert into ops.sync_conflicts (run_id, flow, target, record_key, outbox_id, "
                "payload, payload_hash, "
                "expected_version, target_version, target_updated_by, detail) "
                "select %s, %s, target, record_key, id, payload, payload_hash, expected_version, %s, %s, %s "
                "from ops.sync_outbox where id = %s",
                [(run_id, flow.name, o.version, o.updated_by, o.error, r.outbox_id) for r, o in conflicts],
            )
    conn.commit()


def send_flow(
    conn: psycopg.Connection,
    flow: Flow,
    target: str,
    writer: Writer,
    run_id: str,
    *,
    dry_run: bool = False,
    max_records: int | None = None,
) -> SendResult:
    """Send the target's queued rows of ``flow`` in batches; ``max_records`` caps a trial run."""
    result = SendResult(target=target)
    if dry_run:
        return result
    rows = _pending(conn, flow, target, max_records)
    statuses: Counter[str] = Counter()
    mode = flow.mode_for(target)
    # Recording a batch's outcomes overlaps with sending the next batch (the target and the
    # warehouse work at the same time); while a recording runs, only its thread uses ``conn``.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-record") as recorder:
        recording: Future | None = None
        for start in range(0, len(rows), flow.batch_size):
            batch = rows[start : start + flow.batch_size]
            try:
                outcomes = writer.write(batch, mode)
            except TargetUnavailable as exc:
                if recording:
                    recording.result()
                    recording = None
                # Nothing in this batch is known to be applied: it stays queued with the same keys.
                conn.execute(
                    "update ops.sync_outbox set attempts = attempts + 1, last_error = %s, last_run_id = %s, "
                    "updated_at = now() where id = any(%s) and status = 'pending'",
                    (str(exc)[:2000], run_id, [r.outbox_id for r in batch]),
                )
                conn.commit()
                result.unavailable = len(rows) - start
                result.error = str(exc)
                break
            if recording:
                recording.result()
            recording = recorder.submit(_record, conn, flow, run_id, batch, outcomes)
            result.sent += len(batch)
            for outcome in outcomes:
                statuses[outcome.status] += 1
                result.replayed += outcome.replayed
            result.succeeded = sum(statuses[s] for s in APPLIED)
            result.conflicts = statuses["conflict"]
            result.rejected = result.sent - result.succeeded - result.conflicts
        if recording:
            recording.result()
    result.statuses = dict(statuses)
    conn.execute(
        """
update ops.sync_runs set sent = sent + %s, succeeded = succeeded + %s, rejected = rejected + %s,
       conflicts = conflicts + %s, replayed = replayed + %s, unavailable = unavailable + %s,
       detail = coalesce(detail, '{}'::jsonb) || jsonb_build_object('send_' || %s::text, %s::jsonb)
where run_id = %s
""",
        (
            result.sent,
            result.succeeded,
            result.rejected,
            result.conflicts,
            result.replayed,
            result.unavailable,
            target,
            Jsonb(asdict(result)),
            run_id,
        ),
    )
    conn.commit()
    return result


def finish_run(conn: psycopg.Connection, run_id: str) -> dict[str, Any]:
    row = conn.execute(
        """
update ops.sync_runs set finished_at = now(),
       duration_seconds = extract(epoch from now() - started_at),
       status = case when dry_run then 'dry_run' when unavailable > 0 then 'target_unavailable'
                     when rejected > 0 or conflicts > 0 then 'partial' else 'success' end
where run_id = %s
returning flow, dry_run, considered, skipped_unchanged, queued, sent, succeeded, rejected, conflicts,
          replayed, unavailable, status, detail
""",
        (run_id,),
    ).fetchone()
    conn.commit()
    keys = (
        "flow",
        "dry_run",
        "considered",
        "skipped_unchanged",
        "queued",
        "sent",
        "succeeded",
        "rejected",
        "conflicts",
        "replayed",
        "unavailable",
        "status",
        "detail",
    )
    return {"run_id": run_id, **dict(zip(keys, row, strict=True))}


def fail_run(conn: psycopg.Connection, run_id: str, error: BaseException) -> None:
    """Close a run that stopped on an error, so ``ops.sync_runs`` never shows it running forever."""
    conn.rollback()
    conn.execute(
        "update ops.sync_runs set finished_at = now(), status = 'failed', "
        "duration_seconds = extract(epoch from now() - started_at), "
        "detail = coalesce(detail, '{}'::jsonb) || jsonb_build_object('error', %s::text) where run_id = %s",
        (f"{type(error).__name__}: {error}"[:2000], run_id),
    )
    conn.commit()


def open_rejects(conn: psycopg.Connection, flow: Flow) -> int:
    return conn.execute(
        "select count(distinct (target, record_key)) from ops.sync_rejects where flow = %s and "
        "resolved_at is null",
        (flow.name,),
    ).fetchone()[0]


def run_flow(
    conn: psycopg.Connection,
    flow: Flow,
    writers: dict[str, Writer],
    *,
    dry_run: bool = False,
    max_records: int | None = None,
) -> dict[str, Any]:
    """Plan, then send to every target of the flow; the ``ops.sync_runs`` row as a dict."""
    ensure_ops(conn)
    run_id = new_run_id(flow)
    started = time.monotonic()
    start_run(conn, run_id, flow, dry_run)
    try:
        plan_flow(conn, flow, run_id, dry_run=dry_run)
        for target in flow.targets:
            send_flow(conn, flow, target, writers[target], run_id, dry_run=dry_run, max_records=max_records)
    except Exception as exc:
        fail_run(conn, run_id, exc)
        raise
    summary = finish_run(conn, run_id)
    summary["elapsed_seconds"] = round(time.monotonic() - started, 3)
    return summary
