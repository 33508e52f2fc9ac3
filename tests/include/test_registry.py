"""The source registry: the shipped file is valid, and mistakes in it are caught with clear errors."""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from include.config import REGISTRY_DIR
from include.registry import Registry, load_registry, load_sources


def test_shipped_registry_has_the_five_systems():
    sources = {s.name: s for s in load_sources()}
    assert {n: s.kind for n, s in sources.items()} == {
        "crm": "http",
        "erp": "database",
        "oa": "http",
        "callcenter": "http",
        "marketing": "files",
    }
    customer_entities = {(s.name, e.name) for s in sources.values() for e in s.entities if e.customer_entity}
    assert customer_entities == {
        ("crm", "accounts"),
        ("erp", "customer_master"),
        ("oa", "customer_archive"),
        ("callcenter", "callers"),
        ("marketing", "leads"),
    }


def _raw() -> dict:
    with open(REGISTRY_DIR / "sources.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r["sources"][0].pop("pagination"), "needs: pagination"),
        (lambda r: r["sources"][0]["entities"][0].update(key="nope"), "key 'nope' is not in its fields"),
        (lambda r: r["sources"][1]["entities"][0].update(updated_at=None), "incremental sync needs"),
        (lambda r: r["sources"].append(r["sources"][0]), "duplicate source names"),
        (lambda r: r["sources"][0]["freshness"].update(error_after_hours=1), "error_after_hours must be"),
        (lambda r: r["sources"][4]["entities"][0].pop("column_map"), "missing column_map"),
    ],
)
def test_mistakes_are_reported(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ValidationError, match=message):
        Registry.model_validate(raw)


def test_load_registry_from_another_file(tmp_path):
    raw = _raw()
    raw["sources"] = [s for s in raw["sources"] if s["name"] == "marketing"]
    raw["sources"][0]["name"] = "trade_show"
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    (source,) = load_registry(path).sources
    assert (source.name, source.raw_schema, source.kind) == ("trade_show", "raw_trade_show", "files")


def test_event_channels_take_the_prefix_from_the_environment(monkeypatch):
    from include.registry import EVENTS_CHANNEL_PREFIX_ENV, get_source

    events = get_source("callcenter").events
    monkeypatch.delenv(EVENTS_CHANNEL_PREFIX_ENV, raising=False)
    assert events.redis_channel == "c360.source_changes.callcenter"
    monkeypatch.setenv(EVENTS_CHANNEL_PREFIX_ENV, "dev-h4.")
    assert events.redis_channel == "dev-h4.c360.source_changes.callcenter"
    monkeypatch.setenv(EVENTS_CHANNEL_PREFIX_ENV, "bad prefix ")
    with pytest.raises(ValueError, match=EVENTS_CHANNEL_PREFIX_ENV):
        _ = events.redis_channel
