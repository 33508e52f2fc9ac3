"""The generated world: deterministic, valid where it should be, drifting where real data drifts."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import psycopg
import pytest

from include.config import PgUrl
from include.sandbox import ids
from include.sandbox.generator import generate
from include.sandbox.stores import entity_spec
from tests.include.conftest import AS_OF, World, use_data_dir
from tests.include.sandbox.generator_snapshot import snapshot
from tests.include.sandbox.helpers import (
    CUSTOMER_TABLES,
    app_rows,
    erp_rows,
    lead_ids,
    marketing_files,
    phone_digits,
    read_csv,
    read_marketing_file,
)


def test_same_seed_gives_identical_outputs_and_another_seed_does_not(
    fresh_db: PgUrl, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = []
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        use_data_dir(monkeypatch, tmp_path / name)
        generate(300, seed, as_of=AS_OF, erp_url=fresh_db.url)
        runs.append(snapshot(tmp_path / name, fresh_db.url))
    first, again, other = runs
    assert first["files"].keys() == again["files"].keys()
    assert len([f for f in first["files"] if f.startswith("landing")]) >= 4
    for name, content in first["files"].items():
        assert again["files"][name] == content, name
    assert first["apps"] == again["apps"]
    assert first["erp"] == again["erp"]
    assert first["files"]["ground_truth/customers.csv"] != other["files"]["ground_truth/customers.csv"]
    assert first["apps"]["crm_accounts"] != other["apps"]["crm_accounts"]


def test_checksum_functions_on_known_codes() -> None:
    assert ids.is_valid_uscc("91350100M000100Y43")
    assert not ids.is_valid_uscc("91350100M000100Y44")
    assert ids.is_valid_id_card("11010519491231002X")
    assert not ids.is_valid_id_card("110105194912310021")


def test_uscc_mostly_valid_and_id_numbers_all_valid(world: World) -> None:
    customers = read_csv(world.data_dir / "ground_truth" / "customers.csv")
    companies = [c for c in customers if c["kind"] == "company"]
    persons = [c for c in customers if c["kind"] == "person"]
    assert 0.28 < len(companies) / len(customers) < 0.42
    valid = [ids.is_valid_uscc(c["uscc"]) for c in companies]
    assert 0.88 < sum(valid) / len(valid) < 0.995
    assert all(v == (c["uscc_valid"] == "True") for v, c in zip(valid, companies, strict=True))
    assert all(ids.is_valid_id_card(p["id_card_no"]) for p in persons)
    served_ids = [r["id_card_no"] for r in app_rows(world.data_dir, "crm_accounts") if r["id_card_no"]]
    assert served_ids and all(ids.is_valid_id_card(n) for n in served_ids)


def test_ground_truth_covers_every_customer_record_exactly_once(world: World) -> None:
    links = read_csv(world.data_dir / "ground_truth" / "links.csv")
    keys = [(row["source_system"], row["entity"], row["source_record_id"]) for row in links]
    assert len(keys) == len(set(keys))
    served = set()
    for system, table in CUSTOMER_TABLES.items():
        key = entity_spec(system, table.removeprefix(f"{system}_"))["key"]
        served |= {
            (system, table.removeprefix(f"{system}_"), r[key]) for r in app_rows(world.data_dir, table)
        }
    served |= {("erp", "customer_master", r["cust_no"]) for r in erp_rows(world.erp.url, "customer_master")}
    served |= {("marketing", "leads", i) for p in marketing_files(world.data_dir) for i in lead_ids(p)}
    assert set(keys) == served
    true_ids = {c["customer_id"] for c in read_csv(world.data_dir / "ground_truth" / "customers.csv")}
    assert {row["true_customer_id"] for row in links} <= true_ids
    per_system = Counter(row["source_system"] for row in links)
    assert 0.75 < per_system["crm"] / 1000 < 0.92  # ~80 % plus duplicates
    assert 0.25 < per_system["oa"] / 1000 < 0.38
    # Duplicates inside one system: some true customers hold two CRM accounts.
    crm_per_customer = Counter(row["true_customer_id"] for row in links if row["source_system"] == "crm")
    assert 5 <= sum(1 for n in crm_per_customer.values() if n > 1) <= 60


def test_drift_one_customer_looks_different_in_each_system(world: World) -> None:
    links = read_csv(world.data_dir / "ground_truth" / "links.csv")
    owner = {(r["source_system"], r["source_record_id"]): r["true_customer_id"] for r in links}
    phones: dict[str, list[str]] = defaultdict(list)
    names: dict[str, set[str]] = defaultdict(set)
    for r in app_rows(world.data_dir, "crm_accounts"):
        phones[owner["crm", r["id"]]].append(r["phone"])
        names[owner["crm", r["id"]]].add(r["account_name"])
    for r in erp_rows(world.erp.url, "customer_master"):
        phones[owner["erp", r["cust_no"]]].append(r["contact_tel"])
        names[owner["erp", r["cust_no"]]].add(r["cust_name"])
    for r in app_rows(world.data_dir, "callcenter_callers"):
        phones[owner["callcenter", r["caller_id"]]].append(r["phone"])
    for r in app_rows(world.data_dir, "oa_customer_archive"):
        names[owner["oa", r["archive_id"]]].add(r["customer_name"])
    same_number_other_format = [
        tc for tc, raw in phones.items() if len(set(raw)) > 1 and len({phone_digits(p) for p in raw}) == 1
    ]
    assert len(same_number_other_format) > 50
    assert sum(1 for n in names.values() if len(n) > 1) > 30
    everything = [p for raw in phones.values() for p in raw]
    assert any(p.startswith("+86") for p in everything) and any("-" in p for p in everything)

    customers = {c["customer_id"]: c for c in read_csv(world.data_dir / "ground_truth" / "customers.csv")}
    stale = [
        tc
        for tc, raw in phones.items()
        if customers[tc]["old_mobile"] and customers[tc]["old_mobile"][3:] in {phone_digits(p) for p in raw}
    ]
    assert stale, "some system should still hold a customer's old mobile number"
    crm = app_rows(world.data_dir, "crm_accounts")
    missing_email = sum(1 for r in crm if r["email"] is None) / len(crm)
    assert 0.1 < missing_email < 0.35
    assert any(
        r["email"] and (r["email"] != r["email"].strip() or r["email"] != r["email"].lower()) for r in crm
    )
    changes = app_rows(world.data_dir, "callcenter_contact_changes")
    assert changes and all(c["old_value"] != c["new_value"] for c in changes)


def test_erp_tables_have_real_types_and_counts(world: World) -> None:
    with psycopg.connect(world.erp.url) as conn:
        counts = {
            t: conn.execute(f"select count(*) from erp.{t}").fetchone()[0]
            for t in ("customer_master", "sales_orders", "invoices")
        }
        types = dict(
            conn.execute(
                "select table_name || '.' || column_name, data_type from information_schema.columns"
                " where table_schema = 'erp'"
            ).fetchall()
        )
        statuses = dict(conn.execute("select status, count(*) from erp.invoices group by 1").fetchall())
        late = conn.execute("select count(*) from erp.invoices where paid_date > due_date").fetchone()[0]
        indexes = {r[0] for r in conn.execute("select indexname from pg_indexes where schemaname = 'erp'")}
    assert counts == {t: world.counts[f"erp_{t}"] for t in counts}
    assert 500 < counts["customer_master"] < 720
    assert types["invoices.amount"] == "numeric"
    assert types["invoices.due_date"] == "date"
    assert types["customer_master.modified_time"] == "timestamp with time zone"
    assert {"paid", "partial", "overdue"} <= set(statuses)
    assert late > 0
    assert "ix_customer_master_modified" in indexes


def test_marketing_files_are_readable_with_varied_headers(world: World) -> None:
    files = marketing_files(world.data_dir)
    assert {p.suffix for p in files} == {".csv", ".xlsx"}
    assert any(p.stem.endswith("_gbk") for p in files)
    column_map = entity_spec("marketing", "leads")["column_map"]
    synonyms = {s.lower().replace(" ", ""): field for field, names in column_map.items() for s in names}
    mobile_headers = set()
    total = 0
    for path in files:
        header, *rows = read_marketing_file(path)
        mapped = [synonyms.get(h.lower().replace(" ", "")) for h in header]
        assert {"lead_name", "mobile", "campaign_code", "created_at"} <= set(mapped), path.name
        assert sum(m is None for m in mapped) <= 1  # at most one extra, unmapped column
        mobile_headers.add(header[mapped.index("mobile")])
        name_col = mapped.index("lead_name")
        assert all(len(r[name_col]) >= 2 and "?" not in r[name_col] for r in rows)
        total += len(rows)
    assert len(mobile_headers) > 1
    assert total == world.counts["marketing_leads"]
