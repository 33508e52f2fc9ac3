"""The environment `make up` gives Airflow: several stacks on one machine must not cross."""

from __future__ import annotations

from pathlib import Path

import pytest

from include.cli import airflow_metadata_url, project_env

WAREHOUSE = "postgresql://postgres@127.0.0.1:5432/h4_main"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("C360_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("C360_AIRFLOW_PORT", "8184")
    return project_env(WAREHOUSE)


def test_tasks_reach_this_stacks_execution_api(env):
    # Airflow derives the Execution API URL from [api] base_url (default http://localhost:8080)
    assert env["AIRFLOW__API__PORT"] == "8184"
    assert env["AIRFLOW__API__BASE_URL"] == "http://127.0.0.1:8184"


def test_cosmos_partial_parse_cache_is_this_checkouts(env, tmp_path):
    assert Path(env["AIRFLOW__COSMOS__CACHE_DIR"]).is_relative_to(tmp_path)


def test_long_running_airflow_keeps_its_metadata_next_to_the_warehouse():
    assert airflow_metadata_url(WAREHOUSE) == "postgresql://postgres@127.0.0.1:5432/h4_main_airflow"
    assert airflow_metadata_url("postgresql://u:pw@db:6543/c360").endswith("@db:6543/c360_airflow")
