"""``dbt source freshness`` from Airflow, its results kept as history in ``ops.freshness_checks``.

dbt reads every source's ``loaded_at_field`` (``_loaded_at``) against the ``warn_after`` /
``error_after`` of its ``_<source>__sources.yml``, which equal the registry's SLA (a test keeps
them equal). dbt runs as a subprocess in a temporary target folder, so the project's manifest,
which the dbt DAG renders from, is never rewritten by a freshness run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from include.config import DBT_PROJECT_DIR, PgUrl
from include.extract.landing import OPS_SCHEMA
from include.monitoring.freshness import CHECKS_DDL

DBT = Path(sys.executable).with_name("dbt")


@dataclass(frozen=True)
class DbtFreshness:
    source: str
    entity: str
    status: str  # pass | warn | error (dbt's "runtime error", e.g. a missing table, counts as error)
    max_loaded_at: datetime | None
    age_hours: float | None
    warn_after_hours: int
    error_after_hours: int
    error: str | None = None


def _hours(criteria: dict, level: str) -> int:
    rule = criteria.get(level) or {}
    count, period = rule.get("count") or 0, rule.get("period") or "hour"
    return int(count * {"minute": 1 / 60, "hour": 1, "day": 24}[period])


def run_dbt_source_freshness(warehouse_url: str, timeout_s: int = 600) -> list[DbtFreshness]:
    """Run ``dbt source freshness`` against ``warehouse_url``; one result per source table."""
    db = PgUrl.parse(warehouse_url)
    env = {
        **os.environ,
        "C360_WH_HOST": db.host,
        "C360_WH_PORT": str(db.port),
        "C360_WH_USER": db.user,
        "C360_WH_PASSWORD": db.password,
        "C360_WH_DBNAME": db.dbname,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    }
    with tempfile.TemporaryDirectory(prefix="c360_freshness_") as tmp:
        output = Path(tmp) / "sources.json"
        proc = subprocess.run(
            [
                str(DBT),
                "source",
                "freshness",
                "--project-dir",
                str(DBT_PROJECT_DIR),
                "--profiles-dir",
                str(DBT_PROJECT_DIR),
                "--target-path",
                tmp,
                "--log-path",
                tmp,
                "--output",
                str(output),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        # exit 1 only means some source is past error_after; no output file means dbt itself failed
        if not output.exists():
            raise RuntimeError(
                f"dbt source freshness failed (exit {proc.returncode}) before checking any source:\n"
                + (proc.stdout + proc.stderr)[-3000:]
            )
        artifact = json.loads(output.read_text(encoding="utf-8"))
    results = []
    for r in artifact["results"]:
        _, _, source, entity = r["unique_id"].split(".", 3)
        status = "error" if r["status"] == "runtime error" else r["status"]
        criteria = r.get("criteria") or {}
        max_loaded_at = r.get("max_loaded_at")
        if max_loaded_at and max_loaded_at.startswith("0001-"):
            max_loaded_at = None  # dbt's stand-in for an empty table
        results.append(
            DbtFreshness(
                source=source,
                entity=entity,
                status=status,
                max_loaded_at=datetime.fromisoformat(max_loaded_at) if max_loaded_at else None,
                age_hours=(r["max_loaded_at_time_ago_in_s"] / 3600) if max_loaded_at else None,
                warn_after_hours=_hours(criteria, "warn_after"),
                error_after_hours=_hours(criteria, "error_after"),
                error=r.get("error") or (r.get("message") if status == "error" else None),
            )
        )
    return results


def record_dbt_freshness(
    conn: psycopg.Connection, results: list[DbtFreshness], checked_at: datetime | None = None
) -> None:
    """Append the results to ``ops.freshness_checks`` (``checked_by = 'dbt'``)."""
    checked_at = checked_at or datetime.now(UTC)
    conn.execute(CHECKS_DDL)
    with conn.cursor() as cur:
        cur.executemany(
            f"insert into {OPS_SCHEMA}.freshness_checks (checked_at, source, entity, last_loaded_at, "
            "age_hours, warn_after_hours, error_after_hours, status, checked_by) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, 'dbt')",
            [
                (
                    checked_at,
                    r.source,
                    r.entity,
                    r.max_loaded_at,
                    None if r.age_hours is None else round(r.age_hours, 3),
                    r.warn_after_hours,
                    r.error_after_hours,
                    r.status,
                )
                for r in results
            ],
        )
    conn.commit()
