"""Fixtures: one generated sandbox world per module, and the real HTTP server on loopback."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from include.config import PgUrl
from include.sandbox.faults import FaultConfig
from include.sandbox.generator import generate
from include.sandbox.server import create_app
from tests.conftest import create_database, drop_database

TOKEN = "test-token"
AS_OF = "2026-01-01"


@dataclass
class World:
    data_dir: Path
    erp: PgUrl
    counts: dict[str, int]


def use_data_dir(mp: pytest.MonkeyPatch, data_dir: Path) -> None:
    mp.setenv("C360_DATA_DIR", str(data_dir))
    mp.delenv("C360_LANDING_DIR", raising=False)


@pytest.fixture(scope="module")
def world(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """1,000 customers, seed 11, generated once for the module's read-only tests."""
    data_dir = tmp_path_factory.mktemp("sandbox")
    erp = create_database(pg_server, "c360_erp")
    with pytest.MonkeyPatch.context() as mp:
        use_data_dir(mp, data_dir)
        counts = generate(1000, 11, as_of=AS_OF, erp_url=erp.url)
        yield World(data_dir, erp, counts)
    drop_database(erp)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sandbox_app(
    db_path: Path,
    faults: FaultConfig | None = None,
    redis_url: str | None = None,
    rate_limit: float | None = None,
) -> FastAPI:
    """The sandbox app over ``db_path``; faults off unless given, whatever the environment says."""
    return create_app(
        token=TOKEN,
        db_path=db_path,
        rate_limit=rate_limit,
        faults=faults or FaultConfig(),
        redis_url=redis_url,
    )


@contextlib.contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread on a free loopback port; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start within 10s")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(db_path: Path, rate_limit: float | None = None):
    """The real sandbox server over ``db_path`` (no injected faults); a context manager yielding its URL."""
    return serve_app(sandbox_app(db_path, rate_limit=rate_limit))


@pytest.fixture(scope="module")
def api(world: World) -> Iterator[httpx.Client]:
    """An authenticated client against the sandbox server over the module's world."""
    with (
        serve(world.data_dir / "sandbox" / "apps.sqlite") as base_url,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10) as client,
    ):
        yield client
