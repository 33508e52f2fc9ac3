"""Both warehouse paths: an embedded PostgreSQL started by the project, and a given URL."""

from __future__ import annotations

import socket

import psycopg
import pytest

from include import warehouse
from include.config import WAREHOUSE_URL_ENV


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_embedded_server_starts_on_tcp_with_contrib_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(warehouse.EMBEDDED_PORT_ENV, str(_free_port()))
    monkeypatch.delenv(WAREHOUSE_URL_ENV, raising=False)
    try:
        url, embedded = warehouse.ensure_warehouse()
        assert embedded and url.startswith("postgresql://postgres@127.0.0.1:")
        with psycopg.connect(url) as conn:
            extensions = {r[0] for r in conn.execute("select extname from pg_extension").fetchall()}
            assert {"pg_trgm", "fuzzystrmatch"} <= extensions
            assert conn.execute("select similarity('上海云帆科技', '上海云帆科技有限公司') > 0.3").fetchone()[
                0
            ]
        assert warehouse.ensure_warehouse() == (url, True)  # idempotent: already running
    finally:
        assert warehouse.stop_embedded()
    assert not warehouse.embedded_running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)


def test_given_url_gets_its_database_created(pg_server, monkeypatch):
    target = pg_server.with_dbname("c360_url_path_test")
    monkeypatch.setenv(WAREHOUSE_URL_ENV, target.url)
    with psycopg.connect(pg_server.with_dbname("postgres").url, autocommit=True) as admin:
        admin.execute('drop database if exists "c360_url_path_test" with (force)')
    try:
        url, embedded = warehouse.ensure_warehouse()
        assert (url, embedded) == (target.url, False)
        with psycopg.connect(url) as conn:
            assert conn.execute("select current_database()").fetchone()[0] == "c360_url_path_test"
    finally:
        with psycopg.connect(pg_server.with_dbname("postgres").url, autocommit=True) as admin:
            admin.execute('drop database if exists "c360_url_path_test" with (force)')
