"""`python -m include.sandbox`: generate, then start/status/stop a background server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from include.config import PROJECT_ROOT, PgUrl
from tests.include.conftest import TOKEN, free_port


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.sandbox", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_generate_then_start_status_stop(fresh_db: PgUrl, tmp_path: Path) -> None:
    port = free_port()
    env = os.environ | {
        "C360_DATA_DIR": str(tmp_path),
        "C360_ERP_URL": fresh_db.url,
        "C360_SANDBOX_TOKEN": TOKEN,
        "C360_SANDBOX_PORT": str(port),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    env.pop("C360_LANDING_DIR", None)
    generated = cli("generate", "--customers", "200", "--seed", "3", "--as-of", "2026-01-01", env=env)
    assert generated.returncode == 0, generated.stderr
    assert "crm_accounts" in generated.stdout and "200 customers" in generated.stdout
    try:
        started = cli("start", env=env)
        assert started.returncode == 0, started.stderr
        assert "started" in started.stdout
        again = cli("start", env=env)
        assert "already running" in again.stdout
        status = cli("status", env=env)
        assert status.returncode == 0 and "running" in status.stdout
        response = httpx.get(
            f"http://127.0.0.1:{port}/oa/api/customer-archive", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert response.status_code == 200 and response.json()["total"] > 0
    finally:
        stopped = cli("stop", env=env)
    assert "stopped" in stopped.stdout
    assert cli("status", env=env).returncode == 1
    assert not (tmp_path / "sandbox" / "server.pid").exists()


def test_serve_refuses_without_token(tmp_path: Path) -> None:
    env = os.environ | {"C360_DATA_DIR": str(tmp_path), "PYTHONPATH": str(PROJECT_ROOT)}
    env.pop("C360_SANDBOX_TOKEN", None)
    result = cli("serve", "--port", str(free_port()), env=env)
    assert result.returncode == 2
    assert "C360_SANDBOX_TOKEN" in result.stderr


def test_start_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    """Another checkout's sandbox (here: any listener) on the port: a clear error, not "started"."""
    port = free_port()
    env = os.environ | {
        "C360_DATA_DIR": str(tmp_path),
        "C360_SANDBOX_TOKEN": TOKEN,
        "C360_SANDBOX_PORT": str(port),
        "PYTHONPATH": str(PROJECT_ROOT),
    }
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", port))
        other.listen()
        result = cli("start", env=env)
    assert result.returncode == 1
    assert f"port {port} is in use" in result.stderr and "C360_SANDBOX_PORT" in result.stderr
    assert "started" not in result.stdout
    assert not (tmp_path / "sandbox" / "server.pid").exists()
