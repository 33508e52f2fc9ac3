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

The event-mode build also leaves out the tests no landed data can fail (:func:`event_exclusions`):
unit tests, and the data tests PostgreSQL enforces on the tables, named from dbt's manifest.

Plain functions over the Asset events' extras and dbt's manifest: no Airflow import, unit-tested
without it.
"""

from __future__ import annotations

import bisect
import os
import re
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


# --- what an event-mode build leaves out -------------------------------------------------------------

#: Unit tests check the models' logic on fixed inputs: a data change cannot change their outcome.
UNIT_TESTS = "resource_type:unit_test"


def event_exclusions(manifest: Mapping[str, Any]) -> list[str]:
    """dbt ``--exclude`` arguments of an event-mode build: the unit tests and the data tests the
    database enforces (:func:`database_enforced_tests`), named by :func:`name_selectors`. Neither
    can fail because of landed data; the batch build runs both."""
    return [UNIT_TESTS, *name_selectors(database_enforced_tests(manifest), manifest)]


#: The manifest's sections whose nodes dbt matches a name selector against (``all_nodes``).
_SELECTABLE = (
    "nodes",
    "sources",
    "exposures",
    "metrics",
    "unit_tests",
    "semantic_models",
    "saved_queries",
    "functions",
)
#: Characters dbt's selector syntax reads (graph operators, methods, sets, paths, wildcards):
#: a name holding one is passed as it is, never turned into a pattern.
_SELECTOR_SYNTAX = frozenset(".*?[]:,+@ \t\n")


def name_selectors(names: Iterable[str], manifest: Mapping[str, Any]) -> list[str]:
    """dbt selectors that match exactly the nodes named ``names`` in ``manifest``, in as few
    selectors as name prefixes allow: ``not_null_int_*`` where no other node's name starts so.

    dbt matches every selector against every node of the project, three times in a build
    (``get_selected``). In the identity benchmark's incremental build (1M records, this project's
    manifest: 296 enforced tests, 41 prefixes), dbt's node selection took 2.29-2.86 s with the names
    and 0.83-0.92 s with the prefixes (its log, from "Found 72 models" to "Concurrency"; 0.23 s in
    the full build, which excludes nothing), and its start up to the first node 4.41-5.22 s against
    3.39-3.43 s.

    A selector without a method is matched (shell wildcards, ``fnmatch``) against a node's name
    and its fully qualified name, dotted, with and without the package. Each name's pattern is its
    shortest prefix that no other node's name or qualified name starts with (compared in lower
    case, which can only forbid more), lengthened to the end of its word (the next ``_``), so the
    patterns stay readable: ``accepted_*``, ``not_null_stg_crm__accounts_*``. A name that no
    such prefix sets apart (another node's name starts with all of it), or whose prefix holds a
    character of dbt's selector syntax, is passed whole, as before. Patterns are checked against
    ``manifest`` only: when dbt builds a project changed since it was parsed, a test added since
    that a pattern matches is left out too, until the manifest is parsed again (a whole name would
    not match it)."""
    wanted = set(names)
    others: set[str] = set()
    for section in _SELECTABLE:
        for unique_id, node in (manifest.get(section) or {}).items():
            name = node.get("name") or unique_id.rsplit(".", 1)[-1]
            if section == "nodes" and node.get("resource_type") == "test" and name in wanted:
                continue
            fqn = [str(part) for part in node.get("fqn") or []]
            flat = [piece for part in fqn for piece in part.split(".")]
            others.update(s.lower() for s in (name, ".".join(flat), ".".join(flat[1:]), *fqn))
    ordered = sorted(others)
    chosen: set[str] = set()
    for name in wanted:
        key = name.lower()
        at = bisect.bisect_left(ordered, key)
        # the names sharing the longest prefix with this one sort next to it
        neighbours = [ordered[i] for i in (at - 1, at) if 0 <= i < len(ordered)]
        shared = max((len(os.path.commonprefix((key, other))) for other in neighbours), default=0)
        end = name.find("_", shared)
        prefix = name[: end + 1] if end >= 0 else name
        if len(key) != len(name) or prefix == name or _SELECTOR_SYNTAX.intersection(prefix):
            chosen.add(name)
        else:
            chosen.add(prefix + "*")
    patterns = [s[:-1] for s in chosen if s.endswith("*")]
    return sorted(s for s in chosen if not any(s.startswith(p) and s != p + "*" for p in patterns))


#: Row tests that ``enforce_tested_row_rules()`` turns into CHECK constraints (macro ``row_rule``).
ROW_RULE_TESTS = ("accepted_values", "expression_is_true", "is_e164", "is_valid_uscc")
_PLAIN_COLUMN = re.compile(r"[a-z_][a-z0-9_]*")
#: An index key that is a column, with or without a collation ('code collate "C"').
_INDEX_COLUMN = re.compile(r'([a-z_][a-z0-9_]*)(?:\s+collate\s+(?:"[^"]+"|\w+))?', re.IGNORECASE)
#: What keeps an expression_is_true test from being a CHECK constraint (``row_rule``'s ``unfit``).
UNFIT_EXPRESSION = re.compile(
    r"\{\{|\{%|\b(select|now|current_\w+|localtime\w*|clock_timestamp|statement_timestamp"
    r"|transaction_timestamp|timeofday|random|nextval|currval)\b",
    re.IGNORECASE | re.DOTALL,
)


def database_enforced_tests(manifest: Mapping[str, Any]) -> list[str]:
    """The data tests that compile to catalog checks once their model is built: the names of the
    tests whose property PostgreSQL enforces on the table (``dbt_project/macros/enforced_tests.sql``).

    On a table or incremental model, the post-hooks declare every column with a ``not_null`` test
    NOT NULL and add a CHECK constraint per row test (``accepted_values``, ``expression_is_true``,
    ``is_e164``, ``is_valid_uscc``), both for tests of severity error without a ``where`` config;
    ``unique`` and ``unique_combination_of_columns`` tests are held by a unique index the model
    declares (``indexes`` config, or a contract's primary key or unique constraint). Such a test then
    only checks the catalog: that the NOT NULL, the constraint or the index is still there. No
    landed data can make it fail (a row breaking the rule fails the model that writes it, and the
    table keeps its previous content), and an incremental run does not change the table's
    definition (``on_schema_change='fail'``; the post-hooks re-assert it). So the event-mode build
    leaves them out, as it leaves out unit tests; the batch build runs them.

    This mirrors the macros' decisions from the manifest alone; ``tests/dbt`` checks that the set is
    exactly the tests a build of the project compiled to catalog checks. Tests with
    ``store_failures`` stay (they keep their failing rows). Sorted names, for ``--exclude``.
    """
    nodes = manifest["nodes"]
    found = []
    for test in nodes.values():
        meta = test.get("test_metadata")
        if test.get("resource_type") != "test" or not meta:
            continue
        model = nodes.get(test.get("attached_node") or "")
        config = test.get("config") or {}
        if (
            not model
            or model["config"].get("materialized") not in ("table", "incremental")
            or config.get("where")
            or config.get("store_failures")
        ):
            continue
        if _enforced(meta["name"], meta.get("kwargs") or {}, test.get("column_name"), config, model, nodes):
            found.append(test["name"])
    return sorted(found)


def _enforced(
    name: str,
    kwargs: Mapping[str, Any],
    column: str | None,
    config: Mapping[str, Any],
    model: Mapping[str, Any],
    nodes: Mapping[str, Any],
) -> bool:
    severe = str(config.get("severity", "")).lower() == "error"
    plain = bool(column) and _PLAIN_COLUMN.fullmatch(str(column)) is not None
    if name == "not_null":
        return severe and plain
    if name == "unique":
        return plain and frozenset([column]) in _unique_keys(model)
    if name == "unique_combination_of_columns":
        columns = kwargs.get("combination_of_columns") or []
        return frozenset(columns) in _unique_keys(model) and all(
            c in _not_null_columns(model, nodes) for c in columns
        )
    if name not in ROW_RULE_TESTS or not severe:
        return False
    if name == "accepted_values":
        values = kwargs.get("values")
        return (
            plain
            and isinstance(values, list)
            and len(values) > 0
            and not any("{{" in str(v) or "{%" in str(v) for v in values)
        )
    if name == "expression_is_true":
        text = f"{kwargs.get('expression')} {kwargs.get('where_clause') or ''}"
        return UNFIT_EXPRESSION.search(text) is None
    return plain  # is_e164, is_valid_uscc


def _unique_keys(model: Mapping[str, Any]) -> set[frozenset[str]]:
    """The column sets a unique index of ``model`` covers exactly: its ``indexes`` config (keys that
    are columns, a collation allowed; no expression, no predicate), its contract's primary key and
    unique constraints."""
    keys = set()
    for index in model["config"].get("indexes") or []:
        columns = [_INDEX_COLUMN.fullmatch(str(entry).strip()) for entry in index.get("columns") or []]
        if index.get("unique") and not index.get("where") and columns and all(columns):
            keys.add(frozenset(match[1] for match in columns if match))
    if (model["config"].get("contract") or {}).get("enforced"):
        for column, spec in (model.get("columns") or {}).items():
            if any(c.get("type") in ("primary_key", "unique") for c in spec.get("constraints") or []):
                keys.add(frozenset([column]))
        for constraint in model.get("constraints") or []:
            if constraint.get("type") in ("primary_key", "unique") and constraint.get("columns"):
                keys.add(frozenset(constraint["columns"]))
    return keys


def _not_null_columns(model: Mapping[str, Any], nodes: Mapping[str, Any]) -> set[str]:
    """The columns of ``model`` declared NOT NULL: a not_null test of severity error without a
    ``where`` config (the post-hook), or a contract's not_null constraint."""
    columns = {
        str(test.get("column_name"))
        for test in nodes.values()
        if test.get("resource_type") == "test"
        and test.get("attached_node") == model["unique_id"]
        and (test.get("test_metadata") or {}).get("name") == "not_null"
        and str((test.get("config") or {}).get("severity", "")).lower() == "error"
        and not (test.get("config") or {}).get("where")
    }
    if (model["config"].get("contract") or {}).get("enforced"):
        for column, spec in (model.get("columns") or {}).items():
            if any(c.get("type") in ("not_null", "primary_key") for c in spec.get("constraints") or []):
                columns.add(column)
    return columns
