"""Event-mode propagation latency: a call-center phone change until the CRM shows it.

Needs the whole stack running (`make up`, or `airflow standalone` with the project's environment:
scheduler, triggerer, sandbox, Redis) and one full cycle done, so the crosswalk knows which CRM
account belongs to which caller. For each of ``--changes`` customers held by both systems, it does
what an agent does in the call center (new phone on the caller, a contact-change record, the
change event on the call center's Redis channel), then polls the CRM account until its phone is the
new number in E.164: extract (AssetWatcher) -> dbt (identity, golden record) -> push_flows.

    eval "$(make -s env)"; python -m benchmarks.propagation_latency --changes 20 --interval 3

Prints each change's latency and p50/p95/max; nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import httpx
import psycopg

from include.config import sandbox_dir, sandbox_port, warehouse_url
from include.sandbox import stores
from include.sandbox.events import ChangePublisher


def pick_customers(n: int) -> list[tuple[str, str, str]]:
    """(customer_key, caller_id, crm account id) for n customers held by both systems."""
    with psycopg.connect(warehouse_url()) as conn:
        return conn.execute(
            """
select distinct on (c.customer_key) c.customer_key, c.source_record_id, a.source_record_id
from marts.customer_crosswalk c
join marts.customer_crosswalk a on a.customer_key = c.customer_key and a.source_system = 'crm'
where c.source_system = 'callcenter'
  and (select count(*) from marts.customer_crosswalk k
       where k.customer_key = c.customer_key and k.source_system in ('crm', 'callcenter')) = 2
order by c.customer_key, c.source_record_id
limit %s
""",
            (n,),
        ).fetchall()


def agent_changes_phone(caller_id: str, new_mobile: str, seq: int, publisher: ChangePublisher) -> datetime:
    now = datetime.now(UTC)
    conn = stores.connect_apps()
    try:
        old = conn.execute(
            "select phone from callcenter_callers where caller_id = ?", (caller_id,)
        ).fetchone()[0]
        conn.execute(
            "update callcenter_callers set phone = ?, updated_at = ? where caller_id = ?",
            (new_mobile, stores.cc_ts(now), caller_id),
        )
        conn.execute(
            "insert into callcenter_contact_changes values (?, ?, 'phone', ?, ?, 'latency-probe', ?)",
            (f"CHGLAT{int(now.timestamp())}{seq:03d}", caller_id, old, new_mobile, stores.cc_ts(now)),
        )
        conn.commit()
    finally:
        conn.close()
    publisher.publish("callcenter", "callers", [caller_id], now)
    publisher.publish("callcenter", "contact_changes", [caller_id], now)
    return now


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.propagation_latency", description=__doc__)
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between two changes")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up on a change after this")
    args = parser.parse_args(argv)

    customers = pick_customers(args.changes)
    if len(customers) < args.changes:
        raise SystemExit(f"only {len(customers)} customers are held by both CRM and call center")
    token = (sandbox_dir() / "token").read_text().strip()
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{sandbox_port()}", headers={"Authorization": f"Bearer {token}"}
    )
    publisher = ChangePublisher.from_env()
    stamp = int(time.time()) % 10_000
    pending: dict[str, tuple[str, float]] = {}
    for i, (_, caller_id, account_id) in enumerate(customers):
        mobile = f"139{stamp:04d}{i:04d}"
        agent_changes_phone(caller_id, mobile, i, publisher)
        pending[account_id] = (f"+86{mobile}", time.monotonic())
        print(f"change {i + 1:>2}: caller {caller_id} -> {mobile} (CRM account {account_id})", flush=True)
        time.sleep(args.interval)
    latencies: dict[str, float] = {}
    deadline = time.monotonic() + args.timeout
    while pending and time.monotonic() < deadline:
        for account_id, (phone, started) in list(pending.items()):
            if client.get(f"/crm/v1/accounts/{account_id}").json().get("phone") == phone:
                latencies[account_id] = time.monotonic() - started
                del pending[account_id]
                print(f"  {account_id}: {latencies[account_id]:.1f} s", flush=True)
        time.sleep(1)
    values = sorted(latencies.values())
    if values:
        p95 = values[min(len(values) - 1, round(0.95 * len(values)) - 1)]
        print(
            f"{len(values)}/{args.changes} changes reached the CRM: p50 {statistics.median(values):.1f} s, "
            f"p95 {p95:.1f} s, max {values[-1]:.1f} s (target p95 <= 60 s)"
        )
    if pending:
        print(f"{len(pending)} changes did not reach the CRM within {args.timeout:.0f} s: {sorted(pending)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
