"""Fixtures for the dbt project: a throwaway warehouse with the raw fixture landed and `dbt build` run."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import psycopg
import pytest

from include.config import DBT_PROJECT_DIR, PgUrl
from tests.conftest import create_database, drop_database
from tests.dbt.raw_fixture import AS_OF_DATE, build_raw_database

DBT_EXECUTABLE = Path(sys.executable).with_name("dbt")
#: The marts' rules ("no order for 90 days") are evaluated for the fixture's day, not today.
FIXTURE_VARS = json.dumps({"as_of_date": AS_OF_DATE})


@dataclass(frozen=True)
class DbtWarehouse:
    db: PgUrl
    target_path: Path
    build: subprocess.CompletedProcess[str]
    docs: subprocess.CompletedProcess[str]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db.url) as conn:
            return conn.execute(sql, params).fetchall()


def dbt_env(db: PgUrl) -> dict[str, str]:
    return {
        **os.environ,
        "C360_WH_HOST": db.host,
        "C360_WH_PORT": str(db.port),
        "C360_WH_USER": db.user,
        "C360_WH_PASSWORD": db.password,
        "C360_WH_DBNAME": db.dbname,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def run_dbt(args: list[str], db: PgUrl, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``dbt <args>`` on ``db``, in this process: dbt's programmatic runner, as Cosmos runs it in
    Airflow. A new interpreter would import dbt again each time (about 2.5 s, 60-odd times a suite
    run). Its console output is the returned stdout, as the command line prints it; returncode
    follows dbt's: 0 done, 1 a node failed, 2 dbt itself could not run (stderr says why)."""
    from dbt.cli.main import dbtRunner  # noqa: PLC0415 - dbt's imports only where dbt runs

    command = [
        *args,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
    ]
    console = io.StringIO()
    # the connection settings in os.environ for the call (the profile reads them with env_var())
    with mock.patch.dict(os.environ, dbt_env(db)), contextlib.redirect_stdout(console):
        result = dbtRunner().invoke(command)
    if result.exception is not None:
        returncode, stderr = 2, f"{type(result.exception).__name__}: {result.exception}"
    else:
        returncode, stderr = (0 if result.success else 1), ""
    argv = [str(DBT_EXECUTABLE), *command]
    return subprocess.CompletedProcess(argv, returncode, console.getvalue(), stderr)


#: dbt's debug log line when a lookup finds a schema not in its relation cache and lists it
CACHE_MISS = re.compile(
    r'\[(MainThread|Thread-\d+)[^\]]*\]: On "[^"]*": cache miss for schema "[^".]*\.([^"]+)"'
)


def schemas_listed_into_cache(log_dir: Path) -> dict[str, set[str]]:
    """Schemas dbt listed into its relation cache at a lookup, by the main thread (hooks) and by the
    node threads, in every run logged in ``log_dir`` (dbt.log and its rotated files). A node thread's
    listing races with the other thread's lookups in that schema: listing marks the schema cached at
    its first table (so the on-run-start hook cache_ops_relations lists ops before the threads start)."""
    listed: dict[str, set[str]] = {"main": set(), "nodes": set()}
    for path in sorted(log_dir.glob("dbt.log*")):
        for match in CACHE_MISS.finditer(path.read_text(errors="replace")):
            listed["main" if match.group(1) == "MainThread" else "nodes"].add(match.group(2))
    return listed


@pytest.fixture(scope="session")
def dbt_warehouse(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DbtWarehouse]:
    """A fresh database (the `fresh_db` helpers, session-scoped so one build serves every module)
    with the raw fixture landed, after `dbt build` and `dbt docs generate`."""
    db = create_database(pg_server, "c360_dbt")
    tmp = tmp_path_factory.mktemp("dbt")
    try:
        build_raw_database(db.url)
        build = run_dbt(["build", "--vars", FIXTURE_VARS], db, tmp)
        if build.returncode != 0:
            pytest.fail(f"dbt build failed:\n{build.stdout[-6000:]}\n{build.stderr[-2000:]}")
        # docs generate rewrites run_results.json: keep the build's
        (tmp / "target" / "run_results.json").rename(tmp / "target" / "build_results.json")
        docs = run_dbt(["docs", "generate", "--vars", FIXTURE_VARS], db, tmp)
        yield DbtWarehouse(db=db, target_path=tmp / "target", build=build, docs=docs)
    finally:
        drop_database(db)
