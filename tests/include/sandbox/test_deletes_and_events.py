"""Hard deletes in the full-sync OA entities, and change events on Redis for the CRM and call center."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import redis

from include.config import PgUrl
from include.sandbox import stores
from include.sandbox.changes import CHANGE_COLUMNS, append_changes, delete_records
from include.sandbox.events import CHANNELS
from include.sandbox.generator import generate
from include.sandbox.tick import tick
from tests.include.conftest import AS_OF, TOKEN, sandbox_app, serve_app, use_data_dir
from tests.include.sandbox.helpers import app_rows, read_csv

REDIS_URL = "redis://127.0.0.1:6379/0"
NOW = datetime(2026, 1, 2, 9, 30, 0, tzinfo=UTC)
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def subscriber() -> Iterator[redis.client.PubSub]:
    """A subscription to the change channel on the real Redis at 127.0.0.1:6379."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc}); start redis-server to run this test")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(*CHANNELS.values())
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    yield pubsub
    pubsub.close()
    client.close()


def received(pubsub: redis.client.PubSub, keep, wait: float = 2.0) -> list[dict]:
    """Messages on the channel that ``keep`` accepts (other runs may share the Redis), until quiet."""
    out, deadline = [], time.monotonic() + wait
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            body = json.loads(message["data"])
            if keep(body):
                out.append(body)
                deadline = time.monotonic() + 0.5  # drain what follows, then stop
    return out


@pytest.fixture
def ticked(fresh_db: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, subscriber) -> dict:
    """400 customers, then one tick with events on; what was there before, the tick's counts, its events."""
    use_data_dir(monkeypatch, tmp_path)
    generate(400, 21, as_of=AS_OF, erp_url=fresh_db.url)
    before = {t: app_rows(tmp_path, t) for t in ("oa_customer_archive", "oa_contract_approvals")}
    monkeypatch.setenv("C360_SANDBOX_REDIS_URL", REDIS_URL)
    counts = tick(1, erp_url=fresh_db.url, now=NOW)
    events = received(subscriber, lambda m: m["changed_at"] == NOW.isoformat())
    return {"data": tmp_path, "before": before, "counts": counts, "events": events}


def test_tick_purges_oa_records_and_records_the_deletes(ticked: dict) -> None:
    data, before, counts = ticked["data"], ticked["before"], ticked["counts"]
    deletes = [c for c in read_csv(data / "ground_truth" / "changes.csv") if c["kind"] == "delete"]
    assert set(read_csv(data / "ground_truth" / "changes.csv")[0]) == set(CHANGE_COLUMNS)
    by_entity = {
        e: {c["source_record_id"] for c in deletes if c["entity"] == e}
        for e in ("customer_archive", "contract_approvals")
    }
    assert {c["source_system"] for c in deletes} == {"oa"}
    assert all(c["changed_at"] == NOW.isoformat() and c["field"] == c["new_value"] == "" for c in deletes)
    assert len(by_entity["customer_archive"]) == counts["oa_customer_archive_deleted"] >= 1
    assert len(by_entity["contract_approvals"]) == counts["oa_contract_approvals_deleted"] >= 1

    archives_before = {r["archive_id"] for r in before["oa_customer_archive"]}
    archives_after = {r["archive_id"] for r in app_rows(data, "oa_customer_archive")}
    assert by_entity["customer_archive"] <= archives_before
    assert archives_after.isdisjoint(by_entity["customer_archive"])
    assert archives_before - archives_after == by_entity["customer_archive"]  # nothing else vanished
    approvals_after = app_rows(data, "oa_contract_approvals")
    approvals_before = {r["approval_id"] for r in before["oa_contract_approvals"]}
    assert approvals_before - {r["approval_id"] for r in approvals_after} == by_entity["contract_approvals"]
    # A purged archive takes its approvals with it; no approval is left pointing at nothing.
    cascaded = {
        r["approval_id"]
        for r in before["oa_contract_approvals"]
        if r["archive_id"] in by_entity["customer_archive"]
    }
    assert cascaded <= by_entity["contract_approvals"]
    assert not {r["archive_id"] for r in approvals_after} - archives_after

    # A full sync over HTTP no longer sees them.
    with (
        serve_app(sandbox_app(data / "sandbox" / "apps.sqlite")) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH) as client,
    ):
        body = client.get("/oa/api/customer-archive", params={"per_page": 1000}).json()
    assert body["total"] == len(archives_after)
    assert {r["archive_id"] for r in body["items"]} == archives_after


def test_tick_publishes_every_crm_and_callcenter_change(ticked: dict) -> None:
    data, events = ticked["data"], ticked["events"]
    published: dict[tuple[str, str], set[str]] = {}
    for event in events:
        assert set(event) == {"source", "entity", "ids", "changed_at"}
        published.setdefault((event["source"], event["entity"]), set()).update(event["ids"])
    assert {s for s, _ in published} <= {"crm", "callcenter"}  # no events for OA, ERP or files
    # Exactly the records stamped with the tick's time, per entity.
    for table in stores.app_tables().values():
        if table.system not in ("crm", "callcenter"):
            continue
        changed = {r[table.key] for r in app_rows(data, table.table) if r[table.updated_at] == table.fmt(NOW)}
        assert published.get((table.system, table.entity), set()) == changed, table.table
    assert published[("crm", "accounts")] and published[("callcenter", "tickets")]


def test_bulk_upsert_publishes_the_changed_ids(
    fresh_db: PgUrl, tmp_path: Path, monkeypatch, subscriber
) -> None:
    use_data_dir(monkeypatch, tmp_path)
    generate(200, 5, as_of=AS_OF, erp_url=fresh_db.url)
    accounts = app_rows(tmp_path, "crm_accounts")
    db_path = tmp_path / "sandbox" / "apps.sqlite"
    records = [
        {"id": accounts[0]["id"], "email": "events.one@example.cn"},
        {"id": None, "account_name": "苏州事件测试有限公司", "account_type": "company"},
        {"id": accounts[1]["id"], "phone": "not-a-phone"},
        {"id": accounts[2]["id"], "account_name": accounts[2]["account_name"]},
    ]
    with (
        serve_app(sandbox_app(db_path, redis_url=REDIS_URL)) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH) as client,
    ):
        results = client.post("/crm/v1/accounts/bulk-upsert", json={"records": records}).json()["results"]
        created = results[1]["id"]
        events = received(subscriber, lambda m: accounts[0]["id"] in m["ids"] or created in m["ids"])
        stamp = client.get(f"/crm/v1/accounts/{created}").json()["updated_at"]
    assert [r["status"] for r in results] == ["updated", "created", "rejected", "unchanged"]
    assert len(events) == 1
    assert events[0]["source"] == "crm" and events[0]["entity"] == "accounts"
    assert events[0]["ids"] == [accounts[0]["id"], created]  # not the rejected or unchanged ones
    assert datetime.fromisoformat(events[0]["changed_at"]) == datetime.fromisoformat(
        stamp.replace("Z", "+00:00")
    )

    # Redis down: the write still succeeds.
    with (
        serve_app(sandbox_app(db_path, redis_url="redis://127.0.0.1:1/0")) as base_url,
        httpx.Client(base_url=base_url, headers=AUTH) as client,
    ):
        response = client.post(
            "/crm/v1/accounts/bulk-upsert",
            json={"records": [{"id": accounts[3]["id"], "email": "down@example.cn"}]},
        )
        assert response.status_code == 200 and response.json()["results"][0]["status"] == "updated"
        assert client.get(f"/crm/v1/accounts/{accounts[3]['id']}").json()["email"] == "down@example.cn"


def test_delete_records_purges_and_appends_to_the_ground_truth(
    fresh_db: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_data_dir(monkeypatch, tmp_path)
    generate(200, 5, as_of=AS_OF, erp_url=fresh_db.url)
    truth = tmp_path / "ground_truth" / "changes.csv"
    # A changes.csv from before `kind` existed is upgraded, not mixed.
    truth.write_text(
        "changed_at,source_system,entity,source_record_id,field,new_value\n"
        "2026-01-01T00:00:00+00:00,crm,accounts,001x,email,a@b.cn\n",
        encoding="utf-8",
    )
    callers = app_rows(tmp_path, "callcenter_callers")
    wanted = [callers[4]["caller_id"], "no-such-caller", callers[9]["caller_id"]]
    gone = delete_records("callcenter", "callers", wanted, now=NOW)
    assert gone == [callers[4]["caller_id"], callers[9]["caller_id"]]
    left = {r["caller_id"] for r in app_rows(tmp_path, "callcenter_callers")}
    assert len(left) == len(callers) - 2 and not left & set(gone)
    rows = read_csv(truth)
    assert rows[0]["kind"] == "update" and rows[0]["new_value"] == "a@b.cn"
    assert [(r["entity"], r["source_record_id"], r["kind"]) for r in rows[1:]] == [
        ("callers", gone[0], "delete"),
        ("callers", gone[1], "delete"),
    ]
    assert delete_records("callcenter", "callers", gone, now=NOW) == []  # already gone: nothing recorded
    assert len(read_csv(truth)) == 3
    with pytest.raises(ValueError, match="oa.customer_archive"):
        delete_records("erp", "customer_master", ["C1"])


def test_append_changes_starts_a_new_file_with_the_header(tmp_path: Path, monkeypatch) -> None:
    use_data_dir(monkeypatch, tmp_path)
    append_changes([("2026-01-02T00:00:00+00:00", "oa", "customer_archive", "DA1", "", "", "delete")])
    assert (tmp_path / "ground_truth" / "changes.csv").read_text(encoding="utf-8").splitlines() == [
        ",".join(CHANGE_COLUMNS),
        "2026-01-02T00:00:00+00:00,oa,customer_archive,DA1,,,delete",
    ]
