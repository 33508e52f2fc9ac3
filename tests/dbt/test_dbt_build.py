"""`dbt build` on the hand-made raw fixture: the build is clean and identity resolution is right."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from include.data_dictionary import dictionary_problems
from tests.dbt.conftest import DbtWarehouse
from tests.dbt.raw_fixture import (
    DIFFERENT_CUSTOMERS,
    PII_SALT,
    SAME_CUSTOMER,
    U_INVALID,
    U_XINGCHEN,
    distinct_customer_records,
    load_registry,
)

E164_CN = re.compile(r"^\+86[1-9][0-9]{8,11}$")


def crosswalk(wh: DbtWarehouse) -> dict[tuple[str, str], str]:
    rows = wh.query("select source_system, source_record_id, customer_key from marts.customer_crosswalk")
    return {(system, record): key for system, record, key in rows}


def test_build_and_docs_are_clean(dbt_warehouse: DbtWarehouse) -> None:
    results = json.loads((dbt_warehouse.target_path / "build_results.json").read_text())["results"]
    # exposures are reported as no-op: there is nothing to run for them
    not_clean = {
        r["unique_id"]: r["status"]
        for r in results
        if r["status"] not in ("success", "pass") and not r["unique_id"].startswith("exposure.")
    }
    assert not_clean == {}
    unit_tests = [r for r in results if r["unique_id"].startswith("unit_test.")]
    assert len(unit_tests) == 23  # staging, identity, golden record (13) + business rules (10)
    assert dbt_warehouse.docs.returncode == 0, dbt_warehouse.docs.stdout[-3000:]
    assert "[WARNING]" not in dbt_warehouse.build.stdout + dbt_warehouse.docs.stdout


def test_models_land_in_their_layer_schema(dbt_warehouse: DbtWarehouse) -> None:
    rows = dbt_warehouse.query(
        "select table_schema, table_name from information_schema.tables "
        "where table_schema in ('staging', 'intermediate', 'marts', 'snapshots', 'analytics')"
    )
    by_schema: dict[str, set[str]] = {}
    for schema, table in rows:
        by_schema.setdefault(schema, set()).add(table)
    assert by_schema["marts"] == {
        "dim_customer",
        "customer_crosswalk",
        "customer_key_lookup",
        "customer_golden_provenance",
        "customer_attribute_conflicts",
        "identity_link_evidence",
        "identity_oversized_clusters",
        "fct_orders",
        "fct_receivables",
        "fct_service_tickets",
        "fct_contracts",
        "fct_leads",
        "customer_segments",
        "customer_churn_risk",
        "customer_complaint_anomalies",
        "payment_reminders",
        "lifecycle_stats",
        "monthly_order_trends",
        "customer_alerts",
        "customer_360",
    }
    assert by_schema["intermediate"] == {
        "int_customer_record_changes",
        "int_customer_records",
        "int_identity_touched_records",
        "int_identity_affected_records",
        "int_identity_evidence",
        "int_identity_evidence_part_1",
        "int_identity_evidence_part_2",
        "int_identity_edges",
        "int_identity_components",
        "int_identity_clusters",
        "int_customer_key_assignments",
        "int_customer_key_registry",
        "int_golden_attributes",
        "int_customer_order_stats",
        "int_customer_monthly_orders",
        "int_customer_lifecycle",
    }
    assert len(by_schema["staging"]) == 12
    assert by_schema["snapshots"] == {"snap_dim_customer", "snap_customer_golden_provenance"}
    assert "analytics" not in by_schema


def test_every_customer_record_appears_once_in_crosswalk(dbt_warehouse: DbtWarehouse) -> None:
    expected = distinct_customer_records(load_registry())
    rows = dbt_warehouse.query("select source_system, source_record_id from marts.customer_crosswalk")
    assert len(rows) == len(expected) == 30
    assert set(rows) == expected


def test_every_crosswalk_key_is_a_customer(dbt_warehouse: DbtWarehouse) -> None:
    orphans = dbt_warehouse.query(
        "select x.customer_key from marts.customer_crosswalk as x "
        "left join marts.dim_customer as d using (customer_key) where d.customer_key is null"
    )
    assert orphans == []
    (n_customers,) = dbt_warehouse.query("select count(*) from marts.dim_customer")[0]
    (n_keys,) = dbt_warehouse.query("select count(distinct customer_key) from marts.customer_crosswalk")[0]
    # 30 records: 5 merged groups of 4+3+3+2+3 = 15 records, 15 singletons.
    assert n_customers == n_keys == 20


@pytest.mark.parametrize("group", SAME_CUSTOMER, ids=lambda g: "+".join(sorted(r for _, r in g)))
def test_same_customer_records_share_one_key(
    dbt_warehouse: DbtWarehouse, group: set[tuple[str, str]]
) -> None:
    keys = crosswalk(dbt_warehouse)
    assert {keys[record] for record in group} == {keys[next(iter(group))]}
    (count,) = dbt_warehouse.query(
        "select source_record_count from marts.dim_customer where customer_key = %s",
        (keys[next(iter(group))],),
    )[0]
    assert count == len(group)


@pytest.mark.parametrize("pair", DIFFERENT_CUSTOMERS, ids=lambda p: f"{p[0][1]}-vs-{p[1][1]}")
def test_different_customers_keep_their_own_key(
    dbt_warehouse: DbtWarehouse, pair: tuple[tuple[str, str], tuple[str, str]]
) -> None:
    keys = crosswalk(dbt_warehouse)
    assert keys[pair[0]] != keys[pair[1]]


def test_phones_come_out_as_e164(dbt_warehouse: DbtWarehouse) -> None:
    rows = dbt_warehouse.query(
        "select customer_record_id, mobile_e164, phone_e164 from intermediate.int_customer_records"
    )
    phones = {record: (mobile, phone) for record, mobile, phone in rows}
    assert phones["crm:A001"] == ("+8613812345678", None)  # 138-1234-5678
    assert phones["crm:A002"] == ("+8613900001111", None)  # 0086 139 0000 1111
    assert phones["erp:C002"] == ("+8613900001111", None)  # full-width 86-139-...
    assert phones["erp:C001"] == (None, "+861062345678")  # 010-62345678
    assert phones["oa:OA1"] == (None, "+861062345678")  # (010)6234 5678
    assert phones["crm:A004"] == (None, "+8657188889999")  # 0571-8888 9999
    assert phones["callcenter:CC3"] == ("+8613700002222", "+862155556666")  # alt_phone is the mobile
    assert phones["crm:A009"] == (None, None)  # +1 415 555 1234 is not Chinese
    values = [v for pair in phones.values() for v in pair if v is not None]
    assert len(values) == 30
    assert all(E164_CN.match(v) for v in values), values


def test_invalid_uscc_is_flagged_and_never_matched(dbt_warehouse: DbtWarehouse) -> None:
    flags = dbt_warehouse.query(
        "select uscc, uscc_is_valid from staging.stg_erp__customer_master "
        "where customer_id in ('C001', 'C004') order by customer_id"
    )
    assert flags == [(U_XINGCHEN, True), (U_INVALID, False)]
    assert dbt_warehouse.query(
        "select count(*) from intermediate.int_customer_records where uscc = %s", (U_INVALID,)
    ) == [(0,)]
    assert dbt_warehouse.query(
        "select count(*) from intermediate.int_identity_evidence where %s in (value_a, value_b)", (U_INVALID,)
    ) == [(0,)]
    assert dbt_warehouse.query(
        "select count(*) from intermediate.int_identity_evidence where rule_name = 'same_uscc'"
    ) == [(3,)]  # C001-A001, C001-OA1, A001-OA1


def test_placeholder_values_link_nothing(dbt_warehouse: DbtWarehouse) -> None:
    assert dbt_warehouse.query(
        "select count(*) from intermediate.int_identity_evidence "
        "where value_a in ('+8613800000000', 'test@test.com')"
    ) == [(0,)]


def test_golden_record_survivorship(dbt_warehouse: DbtWarehouse) -> None:
    key = crosswalk(dbt_warehouse)[("erp", "C001")]
    row = dbt_warehouse.query(
        "select customer_type, customer_name, uscc, email, mobile_e164, phone_e164, province, source_systems "
        "from marts.dim_customer where customer_key = %s",
        (key,),
    )[0]
    # ERP wins the legal name and USCC, CRM (its latest version) the email, CRM the mobile.
    assert row == (
        "company",
        "北京星辰科技有限公司",
        U_XINGCHEN,
        "li.ming@xingchen.com",
        "+8613812345678",
        "+861062345678",
        "北京",
        "crm,erp,marketing,oa",
    )
    person_key = crosswalk(dbt_warehouse)[("erp", "C002")]
    assert dbt_warehouse.query(
        "select customer_name, id_card_hash from marts.dim_customer where customer_key = %s", (person_key,)
    ) == [("张伟", hashlib.sha256(f"{PII_SALT}11010519850307006X".encode()).hexdigest())]
    # the number itself is nowhere in the warehouse, raw landings included
    assert dbt_warehouse.query(
        "select count(*) from information_schema.columns where column_name = 'id_card_no' "
        "and table_schema in ('staging', 'intermediate', 'marts', 'snapshots')"
    ) == [(0,)]
    assert dbt_warehouse.query(
        "select count(*) from raw_erp.customer_master where payload::text like '%%11010519850307006%%'"
    ) == [(0,)]


def test_staging_keeps_only_the_latest_version(dbt_warehouse: DbtWarehouse) -> None:
    assert dbt_warehouse.query("select count(*) from raw_crm.accounts where _record_id = 'A001'") == [(2,)]
    assert dbt_warehouse.query("select email from staging.stg_crm__accounts where account_id = 'A001'") == [
        ("li.ming@xingchen.com",)
    ]


def test_every_model_and_column_is_documented(dbt_warehouse: DbtWarehouse) -> None:
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    catalog = json.loads((dbt_warehouse.target_path / "catalog.json").read_text())
    # 48 models + 2 snapshots + 23 read-layer views (16 bi, 5 analyst, 2 pii)
    assert len(catalog["nodes"]) == 73
    # 12 registry entities, steward overrides, erasure tombstones, contact suppressions
    assert len(catalog["sources"]) == 15
    assert dictionary_problems(manifest, catalog) == []
