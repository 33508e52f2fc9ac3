"""Event mode versus batch mode: which part of the pipeline a run has to do.

A change message on a source's Redis channel starts that source's extract DAG (its AssetWatcher).
That run is an *event run*: it lands what changed and emits ``raw_<source>`` with
``{"mode": "event", "source": ...}`` in the Asset event's extra. Downstream DAGs read the extras of
the Asset events that triggered them:

- ``dbt_customer_360`` builds only what the changed sources feed on the way to the marts the
  event-mode push flows read (:func:`event_selection`), instead of the whole project;
- it publishes ``marts.dim_customer`` / ``marts.customer_crosswalk`` with the same mode and sources;
- ``push_flows`` then runs only the flows that react to those sources (``event_sources`` in
  ``include/registry/targets.yaml``), and its freshness sensors poke at the event-mode interval.

A run is in event mode only when every Asset event that triggered it says so: when a batch event
(a scheduled extract, a full dbt build) is among them, or nothing triggered it (a manual or
scheduled run), it does everything. Airflow merges the events queued while a run was busy into
the next run, so a burst of changes becomes one event run, and a scheduled extract landing in the
middle makes the next dbt run a full one.

Plain functions over the Asset events' extras: no Airflow import, unit-tested without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

EVENT = "event"
BATCH = "batch"


def event_extras(triggering_asset_events: Mapping[Any, Iterable[Any]] | None) -> list[dict[str, Any]]:
    """The extras of a run's triggering Asset events (Airflow's ``triggering_asset_events``)."""
    if not triggering_asset_events:
        return []
    return [
        dict(getattr(e, "extra", None) or {}) for events in triggering_asset_events.values() for e in events
    ]


def is_change_message(extra: Mapping[str, Any]) -> bool:
    """An Asset event made by an AssetWatcher's trigger (a change message), not by a task."""
    return bool(extra.get("from_trigger"))


def run_mode(extras: Iterable[Mapping[str, Any]]) -> str:
    """``event`` for an extract run started by change messages only, else ``batch``."""
    extras = list(extras)
    return EVENT if extras and all(is_change_message(x) for x in extras) else BATCH


def changed_sources(extras: Iterable[Mapping[str, Any]]) -> frozenset[str] | None:
    """The sources an event-mode run reacts to, or ``None`` when the run must do everything.

    ``extras`` are the triggering events' extras as published by the extract DAGs (``mode``,
    ``source``) or by the dbt DAG (``mode``, ``sources``).
    """
    extras = list(extras)
    if not extras or any(x.get("mode") != EVENT for x in extras):
        return None
    sources: set[str] = set()
    for x in extras:
        named = x.get("sources") or ([x["source"]] if x.get("source") else [])
        if not named:  # an event-mode event that does not say what changed: play safe
            return None
        sources.update(named)
    return frozenset(sources)


def event_selection(sources: Iterable[str], models: Iterable[str]) -> list[str]:
    """dbt selectors for an event-mode build: every model between a changed source and one of
    ``models`` (``source:<s>+`` intersected with ``+<model>``), each built and tested in DAG order.

    ``[]`` when nothing is to be built; callers treat that as "build nothing", never as "build all".
    """
    return [f"source:{s}+,+{m}" for s in sorted(set(sources)) for m in sorted(set(models))]
