"""Shared fixtures: a real PostgreSQL server (C360_WAREHOUSE_URL) and throwaway databases on it."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from include.config import WAREHOUSE_URL_ENV, PgUrl


@pytest.fixture(scope="session")
def pg_server() -> PgUrl:
    """The server behind C360_WAREHOUSE_URL (set by `make test`, embedded when not given)."""
    url = os.environ.get(WAREHOUSE_URL_ENV)
    if not url:
        pytest.fail(f"{WAREHOUSE_URL_ENV} is not set: run the suite with `make test`")
    return PgUrl.parse(url)


def create_database(server: PgUrl, prefix: str) -> PgUrl:
    """A new database ``<C360_TEST_DB_PREFIX><prefix>_<random>`` (the variable: for a shared server
    whose users may only create databases under their own prefix)."""
    name = f"{os.environ.get('C360_TEST_DB_PREFIX', '')}{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server.with_dbname("postgres").url, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    return server.with_dbname(name)


def drop_database(db: PgUrl) -> None:
    with psycopg.connect(db.with_dbname("postgres").url, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{db.dbname}" with (force)')


@pytest.fixture
def fresh_db(pg_server: PgUrl) -> Iterator[PgUrl]:
    """An empty database for one test, dropped afterwards."""
    db = create_database(pg_server, "c360_test")
    try:
        yield db
    finally:
        drop_database(db)


def _is_e2e(item: pytest.Item) -> bool:
    return item.get_closest_marker("e2e") is not None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """End-to-end tests last: their demo runs go on in the background meanwhile (below)."""
    items.sort(key=_is_e2e)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the end-to-end demo runs (tests/test_end_to_end.py) as soon as they are known to be
    needed: they run beside the rest of the suite, and its first end-to-end test waits for them."""
    if session.config.option.collectonly or not os.environ.get(WAREHOUSE_URL_ENV):
        return
    if any(_is_e2e(item) for item in session.items):
        from tests.test_end_to_end import start_demo_runs  # noqa: PLC0415 - only when selected

        start_demo_runs()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A session that ended before its end-to-end tests (``-x``, Ctrl-C) still stops their runs."""
    e2e = sys.modules.get("tests.test_end_to_end")
    if e2e is not None:
        e2e.stop_demo_runs()
