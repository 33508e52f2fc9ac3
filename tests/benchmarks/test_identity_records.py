"""The identity benchmark's fast path lands what the extracts land.

A small world is generated; every customer entity's records are turned into raw rows by the
benchmark (``prepare``: read as the extract reads them, written to CSV, ``land``: COPY) and, in a
second database, landed by the extracts' own ``land_records`` from the same records. Both raw
tables must hold the same rows: key, content hash, source updated-at and payload.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import psycopg
import pytest

from benchmarks import identity
from benchmarks.common import Workspace
from include.config import PgUrl
from include.extract.landing import ensure_raw_table, land_records
from tests.conftest import create_database, drop_database

RECORDS = 400
CHANGES = 60


def raw_rows(url: str, schema: str, table: str) -> set[tuple]:
    with psycopg.connect(url) as conn:
        return set(
            conn.execute(
                f"select _record_id, _content_hash, _source_updated_at, payload::text, _deleted "
                f"from {schema}.{table}"
            ).fetchall()
        )


@pytest.fixture(scope="module")
def prepared(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory, monkeypatch_module):
    monkeypatch_module.setattr(identity, "CACHE_ROOT", tmp_path_factory.mktemp("identity_cache"))
    ws = Workspace(pg_server)
    try:
        yield ws, identity.prepare(ws, RECORDS, CHANGES)
    finally:
        ws.close()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_counts_follow_the_parameters(prepared):
    _, p = prepared
    meta = p.meta
    assert meta["customers"] == round(RECORDS / identity.RECORDS_PER_CUSTOMER)
    assert abs(meta["base_records"] - RECORDS) < RECORDS * 0.15
    assert meta["new_records"] + meta["changed_records"] == CHANGES
    with open(p.truth_dir / "links.csv", newline="", encoding="utf-8") as fh:
        links = list(csv.DictReader(fh))
    assert len(links) == meta["base_records"] + meta["new_records"]


def test_fast_landing_equals_land_records(prepared, pg_server: PgUrl):
    ws, p = prepared
    fast = create_database(pg_server, "c360_test_fast")
    slow = create_database(pg_server, "c360_test_slow")
    try:
        loaded_at = datetime.now(UTC)
        for part in ("base", "new"):
            identity.land(fast.url, p, part, loaded_at)
        erp_url = ws.server.with_dbname(ws.databases[0]).url  # the generated ERP, still there
        with psycopg.connect(slow.url) as conn:
            for source, entity in identity.customer_entities():
                ensure_raw_table(conn, source.raw_schema, entity.name)
                land_records(
                    conn,
                    source=source.name,
                    entity=entity.name,
                    key=entity.key,
                    updated_at=entity.updated_at,
                    records=list(identity._source_records(source, entity, erp_url)),
                    batch_id="test",
                    tz=source.tz,
                    required_any=tuple(entity.required_any or ()),
                    protected=entity.protected,
                    pii_salt=identity.BENCH_PII_SALT,
                )
            conn.commit()
        for source, entity in identity.customer_entities():
            landed = raw_rows(slow.url, source.raw_schema, entity.name)
            assert len(landed) > 0
            assert raw_rows(fast.url, source.raw_schema, entity.name) == landed, entity.name
    finally:
        drop_database(fast)
        drop_database(slow)


def test_changed_records_are_new_versions_of_landed_ones(prepared, fresh_db: PgUrl):
    _, p = prepared
    identity.land(fresh_db.url, p, "base", datetime.now(UTC))
    identity.land(fresh_db.url, p, "changed", datetime.now(UTC))
    with psycopg.connect(fresh_db.url) as conn:
        versions = 0
        for source, entity in identity.customer_entities():
            versions += conn.execute(
                f"select count(*) from (select _record_id from {source.raw_schema}.{entity.name} "
                "group by _record_id having count(distinct _content_hash) = 2) v"
            ).fetchone()[0]
    assert versions == p.meta["changed_records"] > 0
