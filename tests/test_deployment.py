"""docker-compose.yaml (no Docker engine runs here, so it is checked by parsing it)."""

from __future__ import annotations

import re

import yaml

from include.config import PROJECT_ROOT
from include.registry import load_sources


def _compose() -> dict:
    return yaml.safe_load((PROJECT_ROOT / "docker-compose.yaml").read_text())


def test_services_and_health_ordering():
    services = _compose()["services"]
    assert set(services) == {"warehouse", "redis", "sandbox", "airflow"}
    assert services["airflow"]["depends_on"]["warehouse"] == {"condition": "service_healthy"}
    assert services["warehouse"]["image"] == "postgres:15"
    assert all(p.startswith("127.0.0.1:") for s in services.values() for p in s.get("ports", []))


def test_airflow_has_every_registry_connection():
    env = _compose()["services"]["airflow"]["environment"]
    needed = {"c360_warehouse"} | {s.conn_id for s in load_sources() if s.conn_id}
    assert {f"AIRFLOW_CONN_{c.upper()}" for c in needed} <= set(env)


def test_no_secret_is_written_into_the_file():
    text = (PROJECT_ROOT / "docker-compose.yaml").read_text()
    for line in text.splitlines():
        if re.search(r"(PASSWORD|TOKEN)\s*:", line) and "${" not in line:
            raise AssertionError(f"literal secret in docker-compose.yaml: {line.strip()}")
