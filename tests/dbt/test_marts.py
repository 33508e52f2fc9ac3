"""The customer 360 marts on the raw fixture (rules evaluated as of 2024-03-10), and the dictionary check."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from typing import Any

import pytest

from include.data_dictionary import dictionary_problems
from tests.dbt.conftest import DbtWarehouse


def key_of(wh: DbtWarehouse, system: str, record: str) -> str:
    rows = wh.query(
        "select customer_key from marts.customer_crosswalk "
        "where source_system = %s and source_record_id = %s",
        (system, record),
    )
    return rows[0][0]


def customer_360(wh: DbtWarehouse, key: str) -> dict[str, Any]:
    rows = wh.query(
        "select row_to_json(c)::text from marts.customer_360 as c where customer_key = %s", (key,)
    )
    return json.loads(rows[0][0])


def test_every_fact_row_is_keyed_to_a_customer(dbt_warehouse: DbtWarehouse) -> None:
    for fact, expected in (
        ("fct_orders", 6),
        ("fct_receivables", 2),
        ("fct_service_tickets", 3),
        ("fct_contracts", 1),
        ("fct_leads", 8),
    ):
        rows = dbt_warehouse.query(
            f"select count(*), count(f.customer_key), count(d.customer_key) from marts.{fact} as f "
            "left join marts.dim_customer as d using (customer_key)"
        )
        assert rows == [(expected, expected, expected)], fact


def test_customer_360_has_one_row_per_customer(dbt_warehouse: DbtWarehouse) -> None:
    assert dbt_warehouse.query(
        "select count(*), count(distinct customer_key) from marts.customer_360"
    ) == dbt_warehouse.query("select count(*), count(*) from marts.dim_customer")


def test_refund_and_cancellation_in_lifetime_value(dbt_warehouse: DbtWarehouse) -> None:
    yunfan = customer_360(dbt_warehouse, key_of(dbt_warehouse, "erp", "C003"))
    # SO2 3,000 less the SO4 refund of 500; the refund is not an order
    assert (yunfan["order_count"], yunfan["lifetime_value_cny"], yunfan["average_order_value_cny"]) == (
        1,
        2500.00,
        3000.00,
    )
    xingchen = customer_360(dbt_warehouse, key_of(dbt_warehouse, "erp", "C001"))
    # SO3 (9,999) is cancelled: not an order, no value
    assert (xingchen["order_count"], xingchen["lifetime_value_cny"]) == (1, 1200.50)


def test_lifecycle_segments_and_alerts(dbt_warehouse: DbtWarehouse) -> None:
    hengda = customer_360(dbt_warehouse, key_of(dbt_warehouse, "erp", "C007"))
    assert (hengda["lifecycle_stage"], hengda["segment"], hengda["order_count"]) == ("dormant", "regular", 2)
    lead_only = customer_360(dbt_warehouse, key_of(dbt_warehouse, "marketing", "0f0f0f0f0f0f0f0f:2"))
    assert (lead_only["lifecycle_stage"], lead_only["segment"], lead_only["has_marketing_opt_in"]) == (
        "lead",
        "no_orders",
        True,
    )
    alerts = dbt_warehouse.query(
        "select customer_key, alert_type, severity from marts.customer_alerts order by alert_type"
    )
    assert alerts == [
        (key_of(dbt_warehouse, "erp", "C007"), "churn_risk", "medium"),  # 2 orders, last 161 days ago
        (key_of(dbt_warehouse, "callcenter", "CC6"), "complaint_spike", "high"),  # 2 in 30 days, none before
        (key_of(dbt_warehouse, "erp", "C003"), "payment_due", "high"),  # INV2 due 2024-03-01, unpaid
    ]
    wangfang = customer_360(dbt_warehouse, key_of(dbt_warehouse, "callcenter", "CC6"))
    assert (wangfang["complaints_90d"], wangfang["open_tickets"]) == (2, 2)
    assert wangfang["segment_tags"] == "no_orders,prospect,complaint_spike"


def test_receivables_and_reminders(dbt_warehouse: DbtWarehouse) -> None:
    assert dbt_warehouse.query(
        "select invoice_id, open_amount, days_overdue, is_open from marts.fct_receivables order by invoice_id"
    ) == [("INV1", Decimal("0.00"), 0, False), ("INV2", Decimal("3000.00"), 9, True)]
    assert dbt_warehouse.query("select invoice_id, reminder_type from marts.payment_reminders") == [
        ("INV2", "overdue")
    ]


def test_leads_know_whether_they_matched_a_customer(dbt_warehouse: DbtWarehouse) -> None:
    rows = dict(dbt_warehouse.query("select lead_id, matched_existing_customer from marts.fct_leads"))
    assert rows["a1b2c3d4e5f60718:2"] is True  # 李明 of 星辰科技, in CRM/ERP/OA
    assert rows["a1b2c3d4e5f60718:3"] is True  # 王芳, a call-center caller
    assert sorted(lead for lead, matched in rows.items() if not matched) == [
        f"0f0f0f0f0f0f0f0f:{row}" for row in range(2, 8)
    ]


def test_lifecycle_stats_and_monthly_trends_add_up(dbt_warehouse: DbtWarehouse) -> None:
    stats = dict(dbt_warehouse.query("select lifecycle_stage, customers from marts.lifecycle_stats"))
    (customers,) = dbt_warehouse.query("select count(*) from marts.dim_customer")[0]
    assert sum(stats.values()) == customers
    assert stats == {"lead": 6, "prospect": 11, "active_customer": 2, "dormant": 1, "churned": 0}
    assert dbt_warehouse.query(
        "select order_month::text, orders, new_customers, gross_sales_cny, refunds_cny "
        "from marts.monthly_order_trends order by 1"
    ) == [
        ("2023-09-01", 1, 1, Decimal("20000.00"), Decimal("0.00")),
        ("2023-10-01", 1, 0, Decimal("20000.00"), Decimal("0.00")),
        ("2024-02-01", 2, 2, Decimal("4200.50"), Decimal("500.00")),
    ]


def test_customer_360_lookup_indexes_are_declared(dbt_warehouse: DbtWarehouse) -> None:
    indexed = {
        definition.split("USING btree ")[1]
        for (definition,) in dbt_warehouse.query(
            "select indexdef from pg_indexes where schemaname = 'marts' and tablename = 'customer_360'"
        )
    }
    assert {"(customer_key)", "(mobile_e164)", "(phone_e164)"} <= indexed


# the dictionary check ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def docs(dbt_warehouse: DbtWarehouse) -> tuple[dict[str, Any], dict[str, Any]]:
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    catalog = json.loads((dbt_warehouse.target_path / "catalog.json").read_text())
    return manifest, catalog


def test_dictionary_check_names_what_is_missing(docs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    manifest, catalog = copy.deepcopy(docs[0]), docs[1]
    dim = manifest["nodes"]["model.customer_360.dim_customer"]
    dim["columns"]["email"]["description"] = ""
    dim["columns"]["mobile_e164"]["meta"].pop("label_zh")
    dim["columns"]["mobile_e164"]["config"]["meta"].pop("label_zh")
    dim["columns"]["address"]["meta"]["pii"] = "direct"
    dim["columns"]["address"]["config"]["meta"]["pii"] = "direct"
    manifest["nodes"]["model.customer_360.fct_orders"]["description"] = "ERP orders."
    del manifest["nodes"]["model.customer_360.customer_360"]["columns"]["segment_tags"]
    manifest["exposures"] = {
        k: v for k, v in manifest["exposures"].items() if "model.customer_360.customer_alerts" not in str(v)
    }
    assert sorted(dictionary_problems(manifest, catalog)) == [
        "model.customer_360.customer_360.segment_tags: no description",
        "model.customer_360.customer_alerts: public mart that no exposure (dashboard or sync) depends on",
        "model.customer_360.dim_customer.address: meta.pii is 'direct', "
        "not one of ('none', 'contact', 'identity')",
        "model.customer_360.dim_customer.email: no description",
        "model.customer_360.dim_customer.mobile_e164: no meta.label_zh",
        "model.customer_360.fct_orders: the description does not state the grain ('One row per ...')",
    ]


def test_every_mart_and_fact_feeds_an_exposure(docs: tuple[dict[str, Any], dict[str, Any]]) -> None:
    manifest = docs[0]
    kinds = {e["name"]: e["type"] for e in manifest["exposures"].values()}
    assert sorted(n for n, t in kinds.items() if t == "dashboard") == [
        "bi_customer_360_overview",
        "bi_finance_receivables",
        "bi_sales_retention",
        "bi_service_quality",
        "dashboard_big_screen_overview",
        "dashboard_customer_360_view",
        # the Superset dashboards of deploy/superset (tests/test_deployment.py checks them)
        "superset_customer_360_overview",
        "superset_customer_attention",
    ]
    assert set(kinds.values()) <= {"application", "dashboard", "analysis"}
    marts = {n for n, node in manifest["nodes"].items() if node.get("schema") == "marts"}
    exposed = {d for e in manifest["exposures"].values() for d in e["depends_on"]["nodes"]}
    assert marts - exposed == set()
