"""Key and not-null tests where PostgreSQL enforces the property (dbt_project/macros/enforced_tests.sql).

A `unique` / `unique_combination_of_columns` / `not_null` test on a column the database enforces
checks the catalog instead of scanning the table: it must still fail when the index or the NOT NULL
is gone, and every other case must keep dbt's scanning query, which finds the bad rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.dbt.conftest import DbtWarehouse, run_dbt

SCHEMA = "enforced_probe"

#: test name -> the dispatched test macro's call, on a relation of SCHEMA
CASES = {
    "unique_enforced": "adapter.dispatch('test_unique', 'dbt')(rels.keyed, 'id')",
    "not_null_enforced": "adapter.dispatch('test_not_null', 'dbt')(rels.keyed, 'id')",
    "combination_enforced": "test_unique_combination_of_columns(rels.keyed, ['pair_b', 'pair_a'])",
    "unique_plain": "adapter.dispatch('test_unique', 'dbt')(rels.plain, 'id')",
    "not_null_plain": "adapter.dispatch('test_not_null', 'dbt')(rels.plain, 'id')",
    "combination_nullable": "test_unique_combination_of_columns(rels.plain, ['id', 'note'])",
}
CATALOG_CHECK = "catalog check, no table scan"


def compiled_tests(warehouse: DbtWarehouse, tmp: Path) -> dict[str, str]:
    """Each case's test SQL as dbt renders it against the current catalog (one `dbt show`)."""
    rels = (
        "{% set rels = {"
        + ", ".join(
            f"'{name}': api.Relation.create(database=target.database, schema='{SCHEMA}', identifier='{name}')"
            for name in ("keyed", "plain")
        )
        + "} %}"
    )
    inline = " union all ".join(
        f"select '{name}' as case_name, $case${{{{ {call} }}}}$case$ as test_sql"
        for name, call in CASES.items()
    )
    args = ["show", "--quiet", "--output", "json", "--limit", "-1", "--inline", rels + inline]
    shown = run_dbt(args, warehouse.db, tmp)
    assert shown.returncode == 0, shown.stdout[-3000:] + shown.stderr[-2000:]
    rows = json.loads(shown.stdout[shown.stdout.index("{") :])["show"]
    return {row["case_name"]: row["test_sql"] for row in rows}


def failures(conn: psycopg.Connection, test_sql: str) -> int:
    return len(conn.execute(test_sql).fetchall())


@pytest.fixture
def probe_tables(dbt_warehouse: DbtWarehouse):
    with psycopg.connect(dbt_warehouse.db.url, autocommit=True) as conn:
        conn.execute(f"drop schema if exists {SCHEMA} cascade; create schema {SCHEMA}")
        conn.execute(
            f"create table {SCHEMA}.keyed (id int not null, pair_a int not null, pair_b int not null);"
            f"create unique index on {SCHEMA}.keyed (id);"
            f"create unique index on {SCHEMA}.keyed (pair_a, pair_b) include (id);"
            f"insert into {SCHEMA}.keyed values (1, 1, 1), (2, 1, 2);"
            f"create table {SCHEMA}.plain (id int, note text);"
            f"insert into {SCHEMA}.plain values (1, 'a'), (1, 'a'), (null, null), (null, null);"
        )
        yield conn
        conn.execute(f"drop schema {SCHEMA} cascade")


def test_enforced_properties_are_checked_in_the_catalog_and_the_rest_scanned(
    dbt_warehouse: DbtWarehouse, probe_tables: psycopg.Connection, tmp_path: Path
) -> None:
    conn = probe_tables
    tests = compiled_tests(dbt_warehouse, tmp_path / "first")
    enforced = {name for name, sql in tests.items() if CATALOG_CHECK in sql}
    assert enforced == {"unique_enforced", "not_null_enforced", "combination_enforced"}
    assert {name: failures(conn, sql) for name, sql in tests.items()} == {
        "unique_enforced": 0,
        "not_null_enforced": 0,
        "combination_enforced": 0,
        "unique_plain": 1,  # id 1 twice (nulls are not duplicates to `unique`)
        "not_null_plain": 2,
        # (1, 'a') twice, (null, null) twice: the combination counts nulls as equal
        "combination_nullable": 2,
    }

    # the guarantee goes away: the catalog checks rendered before now fail ...
    conn.execute(
        f"drop index {SCHEMA}.keyed_id_idx; drop index {SCHEMA}.keyed_pair_a_pair_b_id_idx;"
        f"alter table {SCHEMA}.keyed alter column id drop not null;"
        f"insert into {SCHEMA}.keyed values (1, 1, 1), (null, 2, 2)"
    )
    assert all(failures(conn, tests[name]) == 1 for name in enforced)

    # ... and rendered now, the tests scan and find the bad rows
    tests = compiled_tests(dbt_warehouse, tmp_path / "second")
    assert not any(CATALOG_CHECK in sql for sql in tests.values())
    assert failures(conn, tests["unique_enforced"]) == 1
    assert failures(conn, tests["not_null_enforced"]) == 1
    assert failures(conn, tests["combination_enforced"]) == 1


def test_tested_columns_of_tables_are_declared_not_null(dbt_warehouse: DbtWarehouse) -> None:
    """The post-hook declared every not_null-tested column of every table NOT NULL, so the build's
    not_null tests on tables were all catalog checks."""
    manifest = json.loads((dbt_warehouse.target_path / "manifest.json").read_text())
    nodes = manifest["nodes"]
    tested: list[tuple[str, str, str]] = []
    for node in nodes.values():
        if node["resource_type"] != "test" or (node.get("test_metadata") or {}).get("name") != "not_null":
            continue
        model = nodes.get(node["attached_node"] or "")  # None: a source's test
        table = model and model["config"]["materialized"] in ("table", "incremental")
        if table and not node["config"].get("where"):
            tested.append((model["schema"], model["alias"], node["column_name"]))
    assert len(tested) > 100
    declared = set(
        dbt_warehouse.query(
            "select n.nspname, c.relname, a.attname from pg_attribute as a "
            "join pg_class as c on c.oid = a.attrelid join pg_namespace as n on n.oid = c.relnamespace "
            "where a.attnotnull and a.attnum > 0 and n.nspname = any (%s)",
            (sorted({schema for schema, _, _ in tested}),),
        )
    )
    assert [t for t in tested if t not in declared] == []
