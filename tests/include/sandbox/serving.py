"""Run any sandbox app on a free loopback port (the shared ``serve`` fixture builds its own app)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from include.sandbox.faults import FaultConfig
from include.sandbox.server import create_app
from tests.include.conftest import TOKEN, free_port


def sandbox_app(db_path: Path, faults: FaultConfig | None = None, redis_url: str | None = None) -> FastAPI:
    """The app over ``db_path``; faults off unless given, whatever the environment says."""
    return create_app(token=TOKEN, db_path=db_path, faults=faults or FaultConfig(), redis_url=redis_url)


@contextlib.contextmanager
def serve_app(app: FastAPI) -> Iterator[str]:
    """Run ``app`` under uvicorn in a thread; yields its base URL."""
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
