"""The dashboards (include/bi) generated from the dbt fixture's warehouse (rules as of 2024-03-10).

Here rather than under tests/include/bi because they read the session's built warehouse
(`dbt_warehouse`): one dbt build serves the marts' tests and these.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from include import cli
from include.bi.dashboards import write_dashboards
from include.bi.warehouse_data import C360_MARTS, OVERVIEW_MARTS, MissingRelationError, Relations
from include.config import WAREHOUSE_URL_ENV
from tests.dbt.conftest import DbtWarehouse
from tests.test_browser import browser  # noqa: F401 (the headless chromium fixture)

MARTS = Relations(schema="marts")
AS_OF_TIME = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
EXTERNAL_REF = re.compile(
    r"""<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I
)
CSS_URL = re.compile(r"""url\(\s*["']?\s*(?:https?:)?//""", re.I)


def key_of(wh: DbtWarehouse, system: str, record: str) -> str:
    return wh.query(
        "select customer_key from marts.customer_crosswalk "
        "where source_system = %s and source_record_id = %s",
        (system, record),
    )[0][0]


def embedded(html: str) -> dict[str, Any]:
    match = re.search(r'<script id="data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "the 360 page embeds its data"
    return json.loads(match.group(1))


@pytest.fixture(scope="module")
def pages(dbt_warehouse: DbtWarehouse, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("dashboards")
    with psycopg.connect(dbt_warehouse.db.url) as conn:
        build = write_dashboards(conn, out, relations=MARTS)
    assert set(build.pages) == {"overview", "customer_360", "index"}
    return {name: path.read_text(encoding="utf-8") for name, path in build.pages.items()}


def test_customer_360_page_shows_a_known_customers_activity(dbt_warehouse: DbtWarehouse, pages) -> None:
    data = embedded(pages["customer_360"])
    customers = {c["profile"]["customer_key"]: c for c in data["customers"]}
    total = dbt_warehouse.query("select count(*) from marts.customer_360")[0][0]
    assert len(customers) == total  # fixture scale: everyone is embedded
    yunfan = customers[key_of(dbt_warehouse, "erp", "C003")]
    # SO2 and its refund SO4 are two fct_orders rows (order_count counts the order only)
    assert yunfan["orders_total"] == 2 and yunfan["profile"]["order_count"] == 1
    assert sorted(o["order_id"] for o in yunfan["orders"]) == ["SO2", "SO4"]
    assert [(r["invoice_id"], r["open_amount_cny"], r["days_overdue"]) for r in yunfan["receivables"]] == [
        ("INV2", 3000.0, 9)
    ]
    assert [a["alert_type"] for a in yunfan["alerts"]] == ["payment_due"]
    assert {s["source_system"] for s in yunfan["systems"]} == {"erp", "crm", "callcenter"}
    wangfang = customers[key_of(dbt_warehouse, "callcenter", "CC6")]
    assert wangfang["tickets_total"] == 2 and all(t["is_complaint"] for t in wangfang["tickets"])
    # the golden record's snapshot: one version so far, shown as its creation
    assert [e["kind"] for e in wangfang["history"]] == ["created"]
    # alerts first: every customer with an alert comes before every customer without one
    flags = [bool(c["alerts"]) for c in data["customers"]]
    assert flags == sorted(flags, reverse=True) and flags[0]
    assert data["labels"]["customer_360"]["lifetime_value_cny"] == "客户终身价值（人民币）"


def test_overview_shows_the_fixtures_figures(dbt_warehouse: DbtWarehouse, pages) -> None:
    html = pages["overview"]
    names = dict(dbt_warehouse.query("select customer_key, customer_name from marts.customer_360"))
    churn = names[key_of(dbt_warehouse, "erp", "C007")]
    spike = names[key_of(dbt_warehouse, "callcenter", "CC6")]
    overdue = names[key_of(dbt_warehouse, "erp", "C003")]
    sections = html.split("<h2>")
    assert churn in next(s for s in sections if s.startswith("流失风险"))
    assert spike in next(s for s in sections if s.startswith("投诉趋势"))
    assert overdue in next(s for s in sections if s.startswith("逾期应收"))
    customers = dbt_warehouse.query("select count(*) from marts.customer_360")[0][0]
    assert re.search(rf'客户总数<i>Customers</i></div><div class="value">{customers:,}</div>', html)
    assert "¥3,000" in html  # the overdue INV2
    figures = json.loads(
        re.search(r'<script id="figures" type="application/json">(.*?)</script>', html, re.S)[1]
    )
    trend = dbt_warehouse.query("select count(*) from marts.monthly_order_trends")[0][0]
    assert len(figures["trend"]["data"][0]["x"]) == trend


def test_no_identifier_hash_or_unmasked_contact_in_any_page(dbt_warehouse: DbtWarehouse, pages) -> None:
    rows = dbt_warehouse.query(
        "select id_card_hash, uscc, mobile_e164, phone_e164, email from marts.dim_customer "
        "union all select id_card_hash, uscc, mobile_e164, phone_e164, email from snapshots.snap_dim_customer"
    )
    hashes = {r[0] for r in rows if r[0]}
    phones = {p for r in rows for p in r[2:4] if p}
    emails = {r[4] for r in rows if r[4]}
    assert hashes and phones and emails, "the fixture has identifiers to leak"
    for name, html in pages.items():
        for value in hashes:
            assert value not in html, f"{name}: resident-ID hash"
        for phone in phones:
            national = phone.removeprefix("+86")
            assert phone not in html and national not in html, f"{name}: unmasked phone"
        for email in emails:
            assert email not in html, f"{name}: unmasked email"
    contacts = [c["profile"]["mobile_e164"] for c in embedded(pages["customer_360"])["customers"]]
    assert any(m and re.fullmatch(r"1\d\d\*{4}\d{4}", m) for m in contacts)


def test_pages_are_self_contained(pages) -> None:
    for name, html in pages.items():
        assert not EXTERNAL_REF.search(html), name
        assert not CSS_URL.search(html), name
        assert "<script src" not in html.lower(), name
    assert "Plotly.newPlot" in pages["overview"] and len(pages["overview"]) > 3_000_000  # plotly.js inlined


def test_embedding_is_capped_and_the_page_says_so(dbt_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    with psycopg.connect(dbt_warehouse.db.url) as conn:
        build = write_dashboards(conn, tmp_path, relations=MARTS, max_customers=2, as_of_time=AS_OF_TIME)
    html = build.pages["customer_360"].read_text(encoding="utf-8")
    for page in build.pages.values():  # the refresh's "data as of", on the readers' clock
        assert "2026-11-25 18:00 (北京时间)" in page.read_text(encoding="utf-8")
    total = dbt_warehouse.query("select count(*) from marts.customer_360")[0][0]
    assert (build.customers_embedded, build.customers_total) == (2, total)
    assert f"本页内嵌 <b>2</b> / {total:,} 位客户" in html
    assert all(c["alerts"] for c in embedded(html)["customers"])  # the two are customers with alerts


def test_empty_tables_render(dbt_warehouse: DbtWarehouse, tmp_path: Path) -> None:
    with psycopg.connect(dbt_warehouse.db.url) as conn:
        conn.execute("drop schema if exists dash_empty cascade; create schema dash_empty")
        for name in {*OVERVIEW_MARTS, *C360_MARTS, "snap_dim_customer"}:
            source = "snapshots" if name.startswith("snap_") else "marts"
            conn.execute(
                sql.SQL("create table {} (like {})").format(
                    sql.Identifier("dash_empty", name), sql.Identifier(source, name)
                )
            )
        conn.commit()
        try:
            build = write_dashboards(
                conn,
                tmp_path,
                relations=Relations(
                    schema="dash_empty", history=("dash_empty", "snap_dim_customer"), monitoring="x"
                ),
            )
        finally:
            conn.rollback()
            conn.execute("drop schema dash_empty cascade")
            conn.commit()
    overview = build.pages["overview"].read_text(encoding="utf-8")
    assert "暂无流失风险客户" in overview and "暂无逾期应收" in overview and "监控尚未运行" in overview
    assert embedded(build.pages["customer_360"].read_text(encoding="utf-8"))["customers"] == []
    assert build.customers_total == 0


def test_cli_builds_the_pages_from_bi_and_names_a_missing_layer(
    dbt_warehouse: DbtWarehouse, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(WAREHOUSE_URL_ENV, dbt_warehouse.db.url)
    assert cli.main(["dashboards", "--schema", "marts", "--out", str(tmp_path), "--no-serve"]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.html")) == [
        "customer_360.html",
        "index.html",
        "overview.html",
    ]
    # the default: the masked bi views the dbt build made
    assert cli.main(["dashboards", "--out", str(tmp_path / "bi"), "--no-serve"]) == 0
    assert (tmp_path / "bi" / "customer_360.html").exists()
    capsys.readouterr()
    assert (
        cli.main(["dashboards", "--schema", "no_such_layer", "--out", str(tmp_path / "x"), "--no-serve"]) == 2
    )
    assert "no_such_layer.customer_360" in capsys.readouterr().out
    with psycopg.connect(dbt_warehouse.db.url) as conn, pytest.raises(MissingRelationError):
        write_dashboards(conn, tmp_path, relations=Relations(schema="no_such_layer"))


def test_dashboards_render_in_a_browser(dbt_warehouse: DbtWarehouse, browser, tmp_path: Path) -> None:  # noqa: F811
    """Headless chromium opens both pages from disk (no network): the charts are drawn, the 360
    search finds a known customer, and screenshots go to the data folder's screenshots/."""
    from tests.test_browser import SCREENSHOTS

    with psycopg.connect(dbt_warehouse.db.url) as conn:
        build = write_dashboards(conn, tmp_path, relations=MARTS, as_of_time=AS_OF_TIME)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1920, "height": 1080})
    page.goto(build.pages["overview"].as_uri())
    page.wait_for_function(
        "() => document.querySelectorAll('.js-plotly-plot .main-svg').length >= 4", timeout=60_000
    )
    assert "经营总览" in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / "dashboard_overview.png"))

    key = key_of(dbt_warehouse, "erp", "C001")
    page.goto(build.pages["customer_360"].as_uri() + f"#{key}")
    page.wait_for_function("k => document.body.innerText.includes(k)", arg=key, timeout=60_000)
    page.screenshot(path=str(SCREENSHOTS / "dashboard_customer_360.png"))
    page.close()
