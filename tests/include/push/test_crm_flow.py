"""The CRM golden-contacts flow against the real sandbox: diff, idempotency, rejects, conflicts.

Tests run in order on one module world and warehouse; each sets up the change it checks.
"""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest

from include.push.engine import run_flow
from include.push.targets import Flow, Target, load_targets
from include.push.writers import HttpWriter
from tests.include.conftest import World
from tests.include.push.conftest import Warehouse, customer_key


def crm_flow(**changes) -> Flow:
    return load_targets().flow("crm_golden_contacts").model_copy(update={"batch_size": 10, **changes})


def crm_target(**changes) -> Target:
    base = load_targets().target("crm_accounts")
    retry = base.retry.model_copy(update={"attempts": 3, "max_wait_seconds": 0.2})
    return base.model_copy(update={"retry": retry, "timeout_seconds": 5.0, **changes})


def run(
    warehouse: Warehouse, api: httpx.Client, flow: Flow | None = None, target: Target | None = None, **kw
):
    flow = flow or crm_flow()
    with warehouse.connect() as conn:
        return run_flow(conn, flow, {"crm_accounts": HttpWriter(api, target or crm_target(), 1000)}, **kw)


def crm(world: World, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(world.data_dir / "sandbox" / "apps.sqlite") as conn:
        return conn.execute(sql, args).fetchall()


def keys_applied(world: World) -> dict[str, int]:
    """Idempotency keys the CRM applied for this flow, with how often each was presented."""
    return dict(
        crm(world, "select idem_key, hits from api_idempotency_keys where idem_key like 'c360:crm_golden%'")
    )


def set_write_faults(api: httpx.Client, spec: dict) -> None:
    response = api.put("/_admin/faults", params={"scope": "writes"}, json=spec)
    assert response.status_code == 200, response.text


@pytest.fixture(autouse=True)
def no_faults_after(api: httpx.Client):
    yield
    set_write_faults(api, {})


def test_first_run_sends_every_change_and_an_unchanged_rerun_sends_nothing(warehouse, api, world):
    first = run(warehouse, api)
    assert first["considered"] == 60
    assert first["queued"] == 60 and first["sent"] == 60 and first["succeeded"] == 60
    assert first["status"] == "success"
    account = warehouse.accounts[7]
    row = crm(world, "select phone, email, updated_by from crm_accounts where id = ?", (account["id"],))[0]
    assert row == ("+8613900000007", "golden.7@example.com", "c360_sync")
    ext = crm(
        world,
        "select c360_customer_key, c360_tags from crm_account_ext where account_id = ?",
        (account["id"],),
    )
    assert ext == [(customer_key(7), '["customer_type:company", "source_systems:crm,erp"]')]

    before = keys_applied(world)
    second = run(warehouse, api)
    assert (second["queued"], second["sent"], second["skipped_unchanged"]) == (0, 0, 60)
    assert keys_applied(world) == before


def test_dry_run_reports_and_sends_nothing(warehouse, api, world):
    for i in (1, 2, 3):
        warehouse.set_golden(customer_key(i), email=f"dry.{i}@example.com")
    before = keys_applied(world)
    dry = run(warehouse, api, dry_run=True)
    assert dry["sent"] == 0 and dry["status"] == "dry_run"
    assert dry["detail"]["would_send"] == {"crm_accounts": 3}
    assert sorted(s["payload"]["email"] for s in dry["detail"]["sample"]) == [
        f"dry.{i}@example.com" for i in (1, 2, 3)
    ]
    assert keys_applied(world) == before
    assert crm(world, "select email from crm_accounts where id = ?", (warehouse.accounts[1]["id"],))[0][
        0
    ] != ("dry.1@example.com")
    with warehouse.connect() as conn:
        assert (
            conn.execute("select count(*) from ops.sync_outbox where status = 'pending'").fetchone()[0] == 0
        )
    real = run(warehouse, api, max_records=2)  # a small batch first, then the rest
    assert (real["queued"], real["sent"]) == (3, 2)
    rest = run(warehouse, api)
    assert (rest["queued"], rest["sent"], rest["succeeded"]) == (0, 1, 1)


def test_target_failing_a_whole_run_loses_and_duplicates_nothing(warehouse, api, world):
    changed = range(10, 40)
    for i in changed:
        warehouse.set_golden(customer_key(i), mobile_e164=f"+86137{i:08d}")
    before = keys_applied(world)

    set_write_faults(api, {"p500": 1.0})
    down = run(warehouse, api)
    assert down["status"] == "target_unavailable" and down["succeeded"] == 0 and down["unavailable"] == 30
    assert keys_applied(world) == before

    # Flaky: 429s with Retry-After, 500s, and timeouts whose writes land after the client gave up.
    set_write_faults(
        api, {"p500": 0.25, "p429": 0.25, "timeout": 0.3, "seed": 3, "retry_after": 0.1, "sleep": 0.6}
    )
    flaky = run(warehouse, api, target=crm_target(timeout_seconds=0.3))
    injected = api.get("/_admin/faults", params={"scope": "writes"}).json()["injected"]
    assert injected["timeout"] > 0, (flaky, injected)
    set_write_faults(api, {})
    time.sleep(0.7)  # let writes held by injected timeouts finish
    final = run(warehouse, api)
    assert final["status"] == "success"

    with warehouse.connect() as conn:
        outbox = conn.execute(
            "select 'c360:crm_golden_contacts:crm_accounts:' || id || ':' || left(payload_hash, 12), "
            "record_key, status from ops.sync_outbox where payload ->> 'phone' like '+86137%'"
        ).fetchall()
    assert len(outbox) == 30 and {s for _, _, s in outbox} == {"acked"}
    applied = keys_applied(world)
    new_keys = {k: v for k, v in applied.items() if k not in before}
    # One applied key per change: every change reached the CRM once, none twice.
    assert set(new_keys) == {k for k, _, _ in outbox}
    assert any(hits > 1 for hits in new_keys.values()), "the timeouts should have made the client retry a key"
    for i in changed:
        phone = crm(world, "select phone from crm_accounts where id = ?", (warehouse.accounts[i]["id"],))[0][
            0
        ]
        assert phone == f"+86137{i:08d}"


def test_row_rejects_land_in_rejects_and_are_retried(warehouse, api, world):
    warehouse.set_golden(customer_key(41), email="not an email")
    warehouse.set_golden(customer_key(42), email="fine.42@example.com")
    first = run(warehouse, api)
    assert (first["sent"], first["succeeded"], first["rejected"]) == (2, 1, 1)
    with warehouse.connect() as conn:
        reject = conn.execute(
            "select record_key, error, response ->> 'status', attempt from ops.sync_rejects where "
            "resolved_at is null"
        ).fetchall()
    assert reject == [
        (
            warehouse.accounts[41]["id"],
            "email 'not an email' does not look like an email address",
            "rejected",
            1,
        )
    ]

    again = run(warehouse, api)  # nothing new, but the reject is tried again
    assert (again["queued"], again["sent"], again["rejected"]) == (0, 1, 1)

    warehouse.set_golden(customer_key(41), email="fixed.41@example.com")
    fixed = run(warehouse, api)
    assert (fixed["queued"], fixed["sent"], fixed["succeeded"]) == (1, 1, 1)
    with warehouse.connect() as conn:
        attempts, open_ = conn.execute(
            "select max(attempt), count(*) filter (where resolved_at is null) from ops.sync_rejects"
        ).fetchone()
        superseded = conn.execute(
            "select count(*) from ops.sync_outbox where status = 'superseded'"
        ).fetchone()[0]
    assert (attempts, open_, superseded) == (2, 0, 1)


def test_update_only_never_creates(warehouse, api, world):
    accounts_before = crm(world, "select count(*) from crm_accounts")[0][0]
    with warehouse.connect() as conn:
        conn.execute(
            "insert into marts.dim_customer (customer_key, customer_type, mobile_e164) "
            "values ('CGHOST', 'person', '+8613811112222')"
        )
        conn.execute("insert into marts.customer_crosswalk values ('crm', '001GHOSTACCOUNT', 'CGHOST')")
        conn.execute("insert into staging.stg_crm__accounts values ('001GHOSTACCOUNT', now())")
    result = run(warehouse, api)
    assert (result["sent"], result["rejected"]) == (1, 1)
    assert crm(world, "select count(*) from crm_accounts")[0][0] == accounts_before
    assert crm(world, "select count(*) from crm_accounts where id = '001GHOSTACCOUNT'")[0][0] == 0
    with warehouse.connect() as conn:
        error = conn.execute(
            "select error from ops.sync_rejects where record_key = '001GHOSTACCOUNT'"
        ).fetchone()[0]
        conn.execute("delete from marts.customer_crosswalk where customer_key = 'CGHOST'")
        conn.execute("delete from ops.sync_outbox where record_key = '001GHOSTACCOUNT'")
        conn.execute("update ops.sync_rejects set resolved_at = now() where record_key = '001GHOSTACCOUNT'")
    assert "update-only" in error


def test_concurrent_edit_in_the_crm_becomes_a_conflict(warehouse, api, world):
    account = warehouse.accounts[50]
    time.sleep(1.1)  # the CRM keeps whole seconds: the edit must be visibly after our last write
    edit = api.post(
        "/crm/v1/accounts/bulk-upsert",
        headers={"X-Actor": "sales.zhang"},
        json={"records": [{"id": account["id"], "email": "edited.by.sales@example.com"}]},
    )
    assert edit.json()["results"][0]["status"] == "updated"
    warehouse.set_golden(customer_key(50), email="golden.new.50@example.com")
    result = run(warehouse, api)
    assert (result["sent"], result["conflicts"], result["succeeded"]) == (1, 1, 0)
    assert crm(world, "select email from crm_accounts where id = ?", (account["id"],))[0][0] == (
        "edited.by.sales@example.com"
    )
    with warehouse.connect() as conn:
        conflict = conn.execute(
            "select record_key, target_updated_by, payload ->> 'email', resolved_at from ops.sync_conflicts"
        ).fetchall()
    assert conflict == [(account["id"], "sales.zhang", "golden.new.50@example.com", None)]

    # Until we have re-read the record, the same change is not tried again.
    assert run(warehouse, api)["sent"] == 0
    warehouse.reread(api)
    after = run(warehouse, api)
    assert (after["queued"], after["succeeded"]) == (1, 1)
    with warehouse.connect() as conn:
        assert conn.execute("select resolution from ops.sync_conflicts").fetchone()[0] == "target re-read"


def test_a_planner_giving_one_record_two_payloads_is_a_clear_error(warehouse, api):
    account = warehouse.accounts[55]
    with warehouse.connect() as conn:
        conn.execute(
            "insert into marts.customer_crosswalk values ('crm', %s, %s)", (account["id"], customer_key(56))
        )
    try:
        with pytest.raises(ValueError, match="two payloads"):
            run(warehouse, api)
    finally:
        with warehouse.connect() as conn:
            conn.execute(
                "delete from marts.customer_crosswalk where source_record_id = %s and customer_key = %s",
                (account["id"], customer_key(56)),
            )
    with warehouse.connect() as conn:
        failed = conn.execute(
            "select status, detail ->> 'error' from ops.sync_runs order by started_at desc limit 1"
        ).fetchone()
    assert failed[0] == "failed" and "two payloads" in failed[1]
    assert run(warehouse, api)["status"] == "success"


def test_a_rebuilt_warehouse_gets_its_changes_applied_not_replayed(warehouse, api, world):
    """The CRM keeps every idempotency key it applied; a warehouse rebuilt from scratch numbers its
    outbox from 1 again. A new change must not be taken for the old one that had its number."""
    with warehouse.connect() as conn:
        conn.execute("truncate ops.sync_outbox, ops.sync_state restart identity")
    account = warehouse.accounts[3]
    warehouse.reread(api)
    warehouse.set_golden(customer_key(3), email="golden.rebuilt.3@example.com")
    result = run(warehouse, api)
    assert result["status"] == "success" and result["rejected"] == 0
    assert crm(world, "select email from crm_accounts where id = ?", (account["id"],))[0][0] == (
        "golden.rebuilt.3@example.com"
    )
