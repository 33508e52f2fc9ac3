"""A push whose connection has no token, or a wrong one, fails with one clear error naming the
connection, sends nothing and loses nothing; the next run with the token delivers every change once.

Runs the push DAG's own task functions (include/push/runner.py) with the connections given as
``AIRFLOW_CONN_*`` variables, against the real sandbox server.
"""

from __future__ import annotations

import json
import sqlite3

import httpx
import pytest

from include.push import runner
from include.sandbox import writes
from tests.include.conftest import TOKEN, World
from tests.include.push.conftest import Warehouse

FLOW, TARGET, CONN = "crm_golden_contacts", "crm_accounts", "c360_crm_api"


def _use_connections(mp: pytest.MonkeyPatch, warehouse: Warehouse, api: httpx.Client, token: str | None):
    db = warehouse.url
    mp.setenv(
        "AIRFLOW_CONN_C360_WAREHOUSE",
        json.dumps(
            {"conn_type": "postgres", "host": db.host, "port": db.port, "login": db.user, "schema": db.dbname}
        ),
    )
    api_conn = {"conn_type": "http", "host": api.base_url.host, "port": api.base_url.port, "schema": "http"}
    mp.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(api_conn | ({"password": token} if token else {})))


def _crm_state(world: World) -> tuple[list[tuple], list[tuple]]:
    """The CRM accounts and the idempotency keys it applied for this flow."""
    with sqlite3.connect(world.data_dir / "sandbox" / "apps.sqlite") as conn:
        writes.ensure_write_tables(conn)  # the server makes it on its first write
        accounts = conn.execute("select * from crm_accounts order by id").fetchall()
        keys = conn.execute(
            "select idem_key, hits from api_idempotency_keys where idem_key like ? order by 1",
            (f"c360:{FLOW}:%",),
        ).fetchall()
    return accounts, keys


def _outbox(warehouse: Warehouse) -> dict[str, int]:
    with warehouse.connect() as conn:
        return dict(
            conn.execute(
                "select status, count(*) from ops.sync_outbox where flow = %s group by status", (FLOW,)
            ).fetchall()
        )


def _run(monkeypatch, warehouse: Warehouse, api: httpx.Client, token: str | None) -> dict:
    """plan -> send -> finish as the DAG runs them; the send's error (or None) and the summary."""
    with monkeypatch.context() as mp:
        _use_connections(mp, warehouse, api, token)
        plan = runner.plan_task(FLOW, dry_run=False)
        error = None
        try:
            runner.send_task(FLOW, TARGET, plan, max_records=None)
        except Exception as exc:  # the task fails: Airflow retries it and alerts
            error = exc
        summary = runner.finish_task(FLOW, plan)
    return {"plan": plan, "error": error, "summary": summary}


@pytest.mark.parametrize(
    ("label", "token"), [("no token", None), ("wrong token", "not-" + TOKEN), ("stale token", TOKEN + "0")]
)
def test_a_push_without_the_right_token_fails_clearly_and_sends_nothing(
    monkeypatch, warehouse: Warehouse, api: httpx.Client, world: World, label: str, token: str | None
) -> None:
    before = _crm_state(world)
    run = _run(monkeypatch, warehouse, api, token)
    assert isinstance(run["error"], RuntimeError), label
    message = str(run["error"])
    assert CONN in message and "token" in message and "stay queued" in message, message
    assert TOKEN not in message  # the right token is never echoed
    assert run["summary"]["status"] == "target_unavailable"
    assert run["summary"]["sent"] == 0 and run["summary"]["succeeded"] == 0
    # nothing reached the CRM; every change is still queued (60 golden contacts, planned once)
    assert _crm_state(world) == before
    assert _outbox(warehouse) == {"pending": len(warehouse.accounts)}


def test_the_next_run_with_the_token_delivers_every_change_exactly_once(
    monkeypatch, warehouse: Warehouse, api: httpx.Client, world: World
) -> None:
    queued_before = _outbox(warehouse)
    assert queued_before == {"pending": len(warehouse.accounts)}, "run after the refused pushes"
    run = _run(monkeypatch, warehouse, api, TOKEN)
    assert run["error"] is None
    assert run["plan"]["queued"] == 0  # the refused runs' changes, not new ones
    assert run["summary"]["status"] == "success"
    assert run["summary"]["succeeded"] == len(warehouse.accounts)
    assert _outbox(warehouse) == {"acked": len(warehouse.accounts)}
    _, keys = _crm_state(world)
    assert len(keys) == len(warehouse.accounts) and {hits for _, hits in keys} == {1}
    with warehouse.connect() as conn:
        golden = dict(conn.execute("select customer_key, email from marts.dim_customer").fetchall())
    for i, account in enumerate(warehouse.accounts):
        served = api.get(f"/crm/v1/accounts/{account['id']}").json()
        assert served["email"] == golden[f"C{i:07d}"]
    # and a rerun sends nothing again
    again = _run(monkeypatch, warehouse, api, TOKEN)
    assert (again["plan"]["queued"], again["summary"]["sent"]) == (0, 0)
    assert _crm_state(world)[1] == keys
