"""The environment `make up` gives Airflow: several stacks on one machine must not cross; nor may
a DAG parse read a manifest dbt is still writing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from include import cli
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


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A dbt project folder whose target holds an earlier manifest and partial-parse state."""
    project = tmp_path / "dbt_project"
    (project / "target").mkdir(parents=True)
    (project / "target" / "manifest.json").write_text('{"old": true}')
    (project / "target" / cli.PARTIAL_PARSE_FILE).write_bytes(b"state")
    monkeypatch.setattr(cli, "DBT_PROJECT_DIR", project)
    return project


def test_dbt_output_replaces_the_targets_files_whole(project, monkeypatch):
    target = project / "target"
    seen = {}

    def fake_dbt(args, env, **kwargs):
        scratch = Path(args[args.index("--target-path") + 1])
        seen["scratch"] = scratch
        seen["state"] = (scratch / cli.PARTIAL_PARSE_FILE).read_bytes()
        seen["manifest while dbt runs"] = (target / "manifest.json").read_text()
        (scratch / "manifest.json").write_text('{"new": true}')
        (scratch / "compiled" / "m").mkdir(parents=True)
        (scratch / "compiled" / "m" / "a.sql").write_text("select 1")

    monkeypatch.setattr(cli, "run", fake_dbt)
    cli.dbt_into_target(["parse"], {})
    assert seen["scratch"].parent == target
    assert seen["state"] == b"state"  # dbt parses only what changed
    assert seen["manifest while dbt runs"] == '{"old": true}'
    assert (target / "manifest.json").read_text() == '{"new": true}'
    assert (target / "compiled" / "m" / "a.sql").read_text() == "select 1"
    assert not seen["scratch"].exists()


def test_a_failed_dbt_command_leaves_the_target_as_it_was(project, monkeypatch):
    def failing_dbt(args, env, **kwargs):
        scratch = Path(args[args.index("--target-path") + 1])
        (scratch / "manifest.json").write_text('{"half')
        raise subprocess.CalledProcessError(2, args)

    monkeypatch.setattr(cli, "run", failing_dbt)
    with pytest.raises(subprocess.CalledProcessError):
        cli.dbt_into_target(["parse"], {})
    assert (project / "target" / "manifest.json").read_text() == '{"old": true}'
    assert {p.name for p in (project / "target").iterdir()} == {"manifest.json", cli.PARTIAL_PARSE_FILE}
