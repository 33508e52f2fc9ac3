"""Every dashboard page is a dbt exposure whose depends_on is exactly what the generator reads."""

from __future__ import annotations

import yaml

from include.bi.dashboards import PAGES
from include.bi.labels import load_labels
from include.bi.warehouse_data import C360_MARTS, OVERVIEW_MARTS, PROFILE_COLUMNS
from include.config import DBT_PROJECT_DIR

EXPOSURES = DBT_PROJECT_DIR / "models" / "marts" / "_marts__dashboard_exposures.yml"


def _exposures() -> dict[str, dict]:
    doc = yaml.safe_load(EXPOSURES.read_text(encoding="utf-8"))
    return {e["config"]["meta"]["page"]: e for e in doc["exposures"]}


def test_each_page_is_an_exposure_reading_what_the_generator_reads() -> None:
    exposures = _exposures()
    assert set(exposures) == {PAGES["overview"], PAGES["customer_360"]}
    reads = {
        PAGES["overview"]: set(OVERVIEW_MARTS),
        PAGES["customer_360"]: {*C360_MARTS, "snap_dim_customer"},
    }
    for page, exposure in exposures.items():
        assert exposure["type"] == "dashboard"
        assert exposure["url"].endswith("/" + page)
        assert exposure["owner"]["name"] and exposure["config"]["meta"]["label_zh"]
        refs = {d.removeprefix("ref('").removesuffix("')") for d in exposure["depends_on"]}
        assert refs == reads[page], page


def test_every_profile_field_has_a_chinese_label() -> None:
    labels = load_labels()
    assert labels["customer_360"].label == "客户360宽表"
    missing = [c for c in PROFILE_COLUMNS if c not in labels["customer_360"].columns]
    assert missing == []
    assert labels["snap_dim_customer"].columns["mobile_e164"] == "手机号"
