"""tick(): time moves on deterministically, and incremental reads see it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.config import PgUrl
from include.sandbox import stores
from include.sandbox.generator import generate
from include.sandbox.tick import tick
from tests.include.conftest import AS_OF, use_data_dir
from tests.include.sandbox.generator_snapshot import snapshot
from tests.include.sandbox.helpers import app_rows, erp_rows, lead_ids, marketing_files, read_csv

NOW = datetime(2026, 1, 2, 9, 30, 0, tzinfo=UTC)
TABLE_OF = {"crm": "crm_accounts", "oa": "oa_customer_archive", "callcenter": "callcenter_callers"}


def run(data_dir: Path, erp_url: str, mp: pytest.MonkeyPatch, steps: int) -> list[dict]:
    use_data_dir(mp, data_dir)
    generate(400, 21, as_of=AS_OF, erp_url=erp_url)
    return [tick(step, erp_url=erp_url, now=NOW.replace(hour=9 + step)) for step in range(1, steps + 1)]


def test_tick_is_deterministic_and_advances_updated_at(
    fresh_db: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run(tmp_path / "a", fresh_db.url, monkeypatch, steps=2)
    snap_a = snapshot(tmp_path / "a", fresh_db.url)
    second = run(tmp_path / "b", fresh_db.url, monkeypatch, steps=2)
    snap_b = snapshot(tmp_path / "b", fresh_db.url)
    assert first == second
    assert snap_a == snap_b
    assert first[0] != first[1]

    data = tmp_path / "b"
    changes = read_csv(data / "ground_truth" / "changes.csv")
    last_tick = NOW.replace(hour=11)
    edits = [c for c in changes if c["kind"] == "update"]
    assert {c["source_system"] for c in edits} == {first[0]["edited_system"], first[1]["edited_system"]}
    for change in (c for c in edits if c["changed_at"] == last_tick.isoformat()):
        system, key = change["source_system"], change["source_record_id"]
        if system == "erp":
            row = next(r for r in erp_rows(fresh_db.url, "customer_master") if r["cust_no"] == key)
            assert row["modified_time"] == last_tick and row["contact_tel"] == change["new_value"]
            continue
        table = stores.app_tables()[TABLE_OF[system]]
        row = next(r for r in app_rows(data, table.table) if r[table.key] == key)
        assert row[table.updated_at] == table.fmt(last_tick)
        assert change["new_value"] in row.values()

    # New customers and records are in the ground truth, new leads included.
    customers = read_csv(data / "ground_truth" / "customers.csv")
    assert len(customers) == 400 + first[0]["new_customers"] + first[1]["new_customers"]
    links = read_csv(data / "ground_truth" / "links.csv")
    keys = [(r["source_system"], r["source_record_id"]) for r in links]
    assert len(keys) == len(set(keys))
    crm_ids = {r["id"] for r in app_rows(data, "crm_accounts")}
    assert crm_ids == {k for s, k in keys if s == "crm"}
    leads = {i for p in marketing_files(data) for i in lead_ids(p)}
    assert leads == {k for s, k in keys if s == "marketing"}
    assert any("-t0002" in p.name for p in marketing_files(data))

    # Invoices paid and tickets opened by the tick carry its timestamp.
    paid_now = [i for i in erp_rows(fresh_db.url, "invoices") if i["modified_time"] == last_tick]
    assert paid_now and any(i["status"] == "paid" and i["paid_date"] == last_tick.date() for i in paid_now)
    tickets = [t for t in app_rows(data, "callcenter_tickets") if t["opened_at"] == stores.cc_ts(last_tick)]
    assert len(tickets) >= 2


def test_tick_without_generate_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_data_dir(monkeypatch, tmp_path)
    with pytest.raises(RuntimeError, match="generate"):
        tick(1)
