"""Event mode versus batch mode, from the extras of the Asset events that triggered a run."""

from __future__ import annotations

from types import SimpleNamespace

from include.event_mode import BATCH, EVENT, changed_sources, event_extras, event_selection, run_mode
from include.push.targets import load_targets


def _events(*extras: dict) -> dict:
    """``triggering_asset_events`` as Airflow hands it to a task: Asset -> its events."""
    return {"asset": [SimpleNamespace(extra=x) for x in extras]}


def test_extract_run_started_by_change_messages_only_is_an_event_run():
    message = {"from_trigger": True, "payload": {"channel": "c360.source_changes.callcenter", "data": "{}"}}
    assert run_mode(event_extras(_events(message, message))) == EVENT
    assert run_mode(event_extras({})) == BATCH  # scheduled or manual: nothing triggered it
    assert run_mode(event_extras(None)) == BATCH
    assert run_mode(event_extras(_events(message, {"mode": BATCH}))) == BATCH


def test_changed_sources_only_when_every_trigger_was_an_event_run():
    callcenter = {"mode": EVENT, "source": "callcenter", "entities": {}}
    crm = {"mode": EVENT, "source": "crm"}
    assert changed_sources(event_extras(_events(callcenter))) == {"callcenter"}
    assert changed_sources(event_extras(_events(callcenter, crm))) == {"callcenter", "crm"}
    # a scheduled extract among the triggers makes it a full build
    assert changed_sources(event_extras(_events(callcenter, {"mode": BATCH, "source": "erp"}))) is None
    # an event without the source it came from cannot be narrowed: do everything
    assert changed_sources(event_extras(_events({"mode": EVENT}))) is None
    assert changed_sources([]) is None
    # the dbt DAG's mart events carry a list
    assert changed_sources([{"mode": EVENT, "sources": ["callcenter"], "rows": 3}]) == {"callcenter"}


def test_event_selection_intersects_each_changed_source_with_each_mart():
    assert event_selection(["callcenter", "callcenter"], ["dim_customer", "customer_crosswalk"]) == [
        "source:callcenter+,+customer_crosswalk",
        "source:callcenter+,+dim_customer",
    ]
    assert event_selection(["crm"], []) == []


def test_event_flows_of_a_call_center_change():
    registry = load_targets()
    flows = {f.name for f in registry.event_flows(["callcenter"])}
    # the CRM gets the new phone through the golden record; the other systems through the change flow
    assert flows == {"crm_golden_contacts", "callcenter_contact_changes"}
    assert registry.event_marts(["callcenter"]) == ["marts.customer_crosswalk", "marts.dim_customer"]
    assert {f.name for f in registry.event_flows(["marketing"])} == set()
