"""Sync back out: diff detection over N golden records, and push throughput to the sandbox.

``push_diff``: a warehouse with N customers, each owning one CRM account (``marts.dim_customer``,
``marts.customer_crosswalk`` and ``staging.stg_crm__accounts`` as plain tables made with
``generate_series``). The CRM flow is planned once and everything it queued is marked acknowledged
(what a first full push leaves behind). Then 1% of the golden emails change and the plan is timed:
the planner's query over N, the hash of every payload and the comparison with the acknowledged
hashes, and queueing the changed 1%. Finally, those are acknowledged too and an unchanged rerun is
planned: it must queue (and so send) nothing.

``push_throughput``: the real sandbox server (its own process, on loopback) with
the generated CRM accounts; every account's golden email changes, and ``send_flow`` pushes them in
batches of 1,000 through the bulk-write API with idempotency keys, recording every outcome in the
outbox and sync state. Timed: the send, end to end. Repeated ``rounds`` times with new emails so
the figure covers more records than the sandbox has accounts.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import psycopg

from benchmarks.common import Result, Workspace, say
from include.push import engine
from include.push.targets import load_targets
from include.push.writers import HttpWriter

DIFF_TARGET_S = 30.0
THROUGHPUT_TARGET = 5_000.0
TOKEN = "bench-token"

WAREHOUSE_DDL = """
create schema marts;
create schema staging;
create table marts.dim_customer (
    customer_key text primary key, customer_type text, mobile_e164 text, phone_e164 text, email text,
    source_systems text
);
create table marts.customer_crosswalk (source_system text, source_record_id text, customer_key text);
create table staging.stg_crm__accounts (account_id text primary key, source_updated_at timestamptz);
"""


def _ack_everything(conn: psycopg.Connection, flow_name: str) -> None:
    """What the target's acknowledgements would leave: outbox rows acked, their hashes in sync_state."""
    conn.execute(
        """
insert into ops.sync_state (flow, target, record_key, acked_hash, acked_payload, acked_at)
select flow, target, record_key, payload_hash, payload, now() from ops.sync_outbox
where flow = %s and status = 'pending'
on conflict (flow, target, record_key) do update set acked_hash = excluded.acked_hash,
    acked_payload = excluded.acked_payload, acked_at = excluded.acked_at
""",
        (flow_name,),
    )
    conn.execute(
        "update ops.sync_outbox set status = 'acked' where flow = %s and status = 'pending'", (flow_name,)
    )
    conn.commit()


def _plan(conn: psycopg.Connection, flow) -> tuple[float, engine.PlanResult]:
    run_id = engine.new_run_id(flow)
    engine.start_run(conn, run_id, flow, False)
    started = time.perf_counter()
    plan = engine.plan_flow(conn, flow, run_id)
    return time.perf_counter() - started, plan


def diff(ws: Workspace, n: int) -> Result:
    flow = load_targets().flow("crm_golden_contacts")
    url = ws.fresh_database("sync_diff")
    with psycopg.connect(url) as conn:
        say(f"push_diff: building {n:,} golden records with their CRM accounts ...")
        conn.execute(WAREHOUSE_DDL)
        conn.execute(
            """
insert into marts.dim_customer
select 'C' || lpad(i::text, 9, '0'), case when i %% 3 = 0 then 'person' else 'company' end,
       '+86139' || lpad(i::text, 8, '0'), null, 'customer' || i || '@example.com', 'crm,erp'
from generate_series(1, %s) i
""",
            (n,),
        )
        conn.execute(
            "insert into marts.customer_crosswalk select 'crm', 'ACC' || lpad(i::text, 9, '0'), "
            "'C' || lpad(i::text, 9, '0') from generate_series(1, %s) i",
            (n,),
        )
        conn.execute(
            "insert into staging.stg_crm__accounts select 'ACC' || lpad(i::text, 9, '0'), "
            "timestamptz '2026-01-01' from generate_series(1, %s) i",
            (n,),
        )
        conn.execute("analyze")
        conn.commit()
        engine.ensure_ops(conn)
        first_s, first = _plan(conn, flow)
        _ack_everything(conn, flow.name)
        changed = max(1, n // 100)
        conn.execute(
            "update marts.dim_customer set email = 'new.' || email where customer_key in "
            "(select customer_key from marts.dim_customer order by md5(customer_key) limit %s)",
            (changed,),
        )
        conn.commit()
        ws.checkpoint(url)
        say(f"push_diff: planning after {changed:,} golden changes ...")
        diff_s, after = _plan(conn, flow)
        _ack_everything(conn, flow.name)
        rerun_s, rerun = _plan(conn, flow)
    return Result(
        name="push diff detection",
        figure=diff_s,
        unit="s",
        target=f"<= {DIFF_TARGET_S:.0f} s over {n:,}",
        met=diff_s <= DIFF_TARGET_S and after.queued == changed and rerun.queued == 0,
        details={
            "golden_records": n,
            "first_plan_s": round(first_s, 2),
            "first_plan_queued": first.queued,
            "changed": changed,
            "diff_s": round(diff_s, 2),
            "diff_queued": after.queued,
            "unchanged_rerun_s": round(rerun_s, 2),
            "unchanged_rerun_queued": rerun.queued,
        },
    )


@contextlib.contextmanager
def _serve_sandbox(ws: Workspace) -> Iterator[str]:
    """The sandbox server as its own process (as a target system is), on a free loopback port."""
    ws.erp_url()  # generates the sandbox into the workspace's data folder
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, C360_SANDBOX_TOKEN=TOKEN, C360_SANDBOX_FAULTS="", C360_SANDBOX_WRITE_FAULTS="")
    env.pop("C360_SANDBOX_REDIS_URL", None)
    env.pop("C360_SANDBOX_RATE_LIMIT", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.sandbox", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base_url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the sandbox server did not start within 30 s")
            time.sleep(0.1)
        yield base_url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def throughput(ws: Workspace, rounds: int = 3) -> Result:
    flow = load_targets().flow("crm_golden_contacts").model_copy(update={"batch_size": 1000})
    target = load_targets().target("crm_accounts")
    accounts = ws.crm_accounts()
    url = ws.fresh_database("sync_push")
    with psycopg.connect(url) as conn:
        conn.execute(WAREHOUSE_DDL)
        with conn.cursor() as cur:
            cur.executemany(
                "insert into marts.dim_customer values (%s, 'company', %s, null, %s, 'crm')",
                [(f"C{i:07d}", f"+86139{i:08d}", f"golden.{i}@example.com") for i in range(len(accounts))],
            )
            cur.executemany(
                "insert into marts.customer_crosswalk values ('crm', %s, %s)",
                [(a["id"], f"C{i:07d}") for i, a in enumerate(accounts)],
            )
            cur.executemany(
                "insert into staging.stg_crm__accounts values (%s, %s)",
                [(a["id"], a["updated_at"]) for a in accounts],
            )
        conn.commit()
        engine.ensure_ops(conn)
    sent = 0
    elapsed = 0.0
    with (
        _serve_sandbox(ws) as base_url,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}) as client,
        psycopg.connect(url) as conn,
    ):
        writer = HttpWriter(client, target, max_requests_per_second=1000)
        for r in range(rounds):
            if r:
                conn.execute("update marts.dim_customer set email = 'r' || %s || '.' || email", (r,))
                # our own previous round is the last read, as a re-extract would make it
                conn.execute(
                    "update staging.stg_crm__accounts a set source_updated_at = s.target_version "
                    "from ops.sync_state s where s.record_key = a.account_id"
                )
                conn.commit()
            run_id = engine.new_run_id(flow)
            engine.start_run(conn, run_id, flow, False)
            engine.plan_flow(conn, flow, run_id)
            say(f"push_throughput: round {r + 1}/{rounds}, sending {len(accounts):,} records ...")
            started = time.perf_counter()
            result = engine.send_flow(conn, flow, "crm_accounts", writer, run_id)
            elapsed += time.perf_counter() - started
            sent += result.succeeded
            if result.succeeded != len(accounts):
                raise RuntimeError(f"round {r + 1}: {result}")
        rerun_id = engine.new_run_id(flow)
        engine.start_run(conn, rerun_id, flow, False)
        engine.plan_flow(conn, flow, rerun_id)
        rerun = engine.send_flow(conn, flow, "crm_accounts", writer, rerun_id)
    rate = sent / elapsed
    return Result(
        name="push throughput (sandbox CRM)",
        figure=rate,
        unit="rows/s",
        target=f">= {THROUGHPUT_TARGET:,.0f} rows/s",
        met=rate >= THROUGHPUT_TARGET and rerun.sent == 0,
        details={
            "records_sent": sent,
            "rounds": rounds,
            "batch_size": flow.batch_size,
            "send_s": round(elapsed, 2),
            "unchanged_rerun_sent": rerun.sent,
        },
    )
