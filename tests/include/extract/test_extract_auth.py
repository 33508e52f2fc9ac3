"""An extract whose connection has no token, or a wrong one, fails clearly (naming the connection),
lands nothing and moves no cursor; the extract DAG's own session helper is what is tested."""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest

from include.extract.http_api import source_session
from include.extract.runner import extract_entity
from include.registry import load_sources
from tests.include.conftest import TOKEN, serve

SOURCES = [s for s in load_sources() if s.kind == "http"]


@pytest.fixture(scope="module")
def base_url(world):
    with serve(world.data_dir / "sandbox" / "apps.sqlite") as url:
        yield url


def _connection(mp: pytest.MonkeyPatch, conn_id: str, base_url: str, token: str | None) -> None:
    url = httpx.URL(base_url)
    conn = {"conn_type": "http", "host": url.host, "port": url.port, "schema": "http"}
    mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn | ({"password": token} if token else {})))


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_a_connection_without_a_token_fails_before_any_request(monkeypatch, base_url, source) -> None:
    _connection(monkeypatch, source.conn_id, base_url, None)
    with pytest.raises(PermissionError, match=f"connection {source.conn_id} has no password"):
        source_session(source.conn_id)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_a_wrong_token_fails_the_extract_and_lands_nothing(monkeypatch, fresh_db, base_url, source) -> None:
    entity = next(e for e in source.entities if e.customer_entity)
    _connection(monkeypatch, source.conn_id, base_url, "wrong-" + TOKEN)
    with source_session(source.conn_id) as client, pytest.raises(PermissionError) as refused:
        extract_entity(source, entity, fresh_db.url, client=client, run_id="r-wrong")
    message = str(refused.value)
    assert f"Airflow connection {source.conn_id}" in message and "401" in message, message
    with psycopg.connect(fresh_db.url) as conn:
        landed = conn.execute(f"select count(*) from {source.raw_schema}.{entity.name}").fetchone()[0]
        runs = conn.execute("select status, error, rows_landed from ops.extract_runs").fetchall()
        cursors = conn.execute("select count(*) from ops.extract_state").fetchone()[0]
    assert landed == 0 and cursors == 0
    assert [(status, rows) for status, _, rows in runs] == [("failed", 0)]
    assert source.conn_id in runs[0][1]
    # the same extract with the token lands the entity
    _connection(monkeypatch, source.conn_id, base_url, TOKEN)
    with source_session(source.conn_id) as client:
        result = extract_entity(source, entity, fresh_db.url, client=client, run_id="r-right")
    assert result.inserted > 0
