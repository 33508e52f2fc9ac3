"""The dbt sources declare exactly the registry's sources, tables and freshness SLAs."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from include.config import DBT_PROJECT_DIR
from tests.dbt.raw_fixture import load_registry

REGISTRY = load_registry()
SOURCE_NAMES = [source["name"] for source in REGISTRY["sources"]]


def dbt_source(name: str) -> dict[str, Any]:
    path = DBT_PROJECT_DIR / "models" / "staging" / name / f"_{name}__sources.yml"
    assert path.exists(), f"missing {path}"
    (source,) = yaml.safe_load(path.read_text(encoding="utf-8"))["sources"]
    return source


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_declares_every_registry_entity(name: str) -> None:
    registry_source = next(s for s in REGISTRY["sources"] if s["name"] == name)
    source = dbt_source(name)
    assert source["name"] == name
    assert source["schema"] == f"raw_{name}"
    assert [t["name"] for t in source["tables"]] == [e["name"] for e in registry_source["entities"]]


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_freshness_equals_registry(name: str) -> None:
    registry_freshness = next(s for s in REGISTRY["sources"] if s["name"] == name)["freshness"]
    config = dbt_source(name)["config"]
    assert config["loaded_at_field"] == "_loaded_at"
    assert config["freshness"] == {
        "warn_after": {"count": registry_freshness["warn_after_hours"], "period": "hour"},
        "error_after": {"count": registry_freshness["error_after_hours"], "period": "hour"},
    }


@pytest.mark.parametrize("name", SOURCE_NAMES)
def test_source_is_described_with_chinese_label(name: str) -> None:
    registry_source = next(s for s in REGISTRY["sources"] if s["name"] == name)
    source = dbt_source(name)
    assert source["description"].strip()
    assert source["config"]["meta"]["label_zh"] == registry_source["label"]
    for table in source["tables"]:
        assert table["description"].strip(), table["name"]
        assert table["config"]["meta"]["label_zh"], table["name"]


def test_every_registry_entity_has_a_staging_model() -> None:
    staging = DBT_PROJECT_DIR / "models" / "staging"
    missing = [
        f"stg_{s['name']}__{e['name']}.sql"
        for s in REGISTRY["sources"]
        for e in s["entities"]
        if not (staging / s["name"] / f"stg_{s['name']}__{e['name']}.sql").exists()
    ]
    assert missing == []
