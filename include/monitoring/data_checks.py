"""Data checks after each dbt build: row-count deltas, null rates on key fields, duplicate keys.

dbt's own tests (unique, not_null, relationships, contracts) stop a broken model; these checks
watch what dbt tests cannot see: a mart that shrank by a third since the last build, a field that
went mostly empty. Every result lands in ``monitoring.data_checks``; the newest passing build of a
mart is what the freshness sensors of its consumers wait on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg import sql

from include.monitoring.settings import DataChecks, ModelCheck


@dataclass(frozen=True)
class CheckResult:
    relation: str
    check_name: str
    value: float | None
    threshold: str
    passed: bool
    detail: str


def _relation(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


def check_model(conn: psycopg.Connection, model: ModelCheck, config: DataChecks) -> list[CheckResult]:
    rel = model.relation
    ident = _relation(rel)
    rows = conn.execute(sql.SQL("select count(*) from {}").format(ident)).fetchone()[0]
    results = []

    previous = conn.execute(
        """
        select value from monitoring.data_checks c
        where relation = %s and check_name = 'row_count'
          and run_id in (select run_id from monitoring.data_checks where relation = %s
                         group by run_id having bool_and(passed))
        order by checked_at desc limit 1
        """,
        (rel, rel),
    ).fetchone()
    band = f"-{config.row_count_drop_pct:g}% .. +{config.row_count_growth_pct:g}% of the last good build"
    if previous is None or previous[0] == 0:
        results.append(
            CheckResult(rel, "row_count", rows, band, rows > 0, f"{rel}: {rows} rows (no baseline)")
        )
    else:
        before = float(previous[0])
        change = 100.0 * (rows - before) / before
        ok = -config.row_count_drop_pct <= change <= config.row_count_growth_pct
        results.append(
            CheckResult(
                rel, "row_count", rows, band, ok, f"{rel}: {rows} rows, {change:+.1f}% vs {before:.0f}"
            )
        )

    key = sql.SQL(", ").join(sql.Identifier(c) for c in model.key)
    dupes = conn.execute(
        sql.SQL("select count(*) from (select {k} from {t} group by {k} having count(*) > 1) d").format(
            k=key, t=ident
        )
    ).fetchone()[0]
    results.append(
        CheckResult(
            rel,
            "duplicate_keys",
            dupes,
            "0",
            dupes == 0,
            f"{rel}: {dupes} duplicated key(s) on ({', '.join(model.key)})",
        )
    )

    limits = {column: 0.0 for column in model.not_null} | dict(model.max_null_pct)
    for column, limit in limits.items():
        nulls = conn.execute(
            sql.SQL("select count(*) filter (where {c} is null) from {t}").format(
                c=sql.Identifier(column), t=ident
            )
        ).fetchone()[0]
        pct = 100.0 * nulls / rows if rows else 0.0
        results.append(
            CheckResult(
                rel,
                f"null_pct:{column}",
                round(pct, 3),
                f"<= {limit:g}%",
                pct <= limit,
                f"{rel}.{column}: {pct:.1f}% null (limit {limit:g}%)",
            )
        )
    return results


def run_data_checks(
    conn: psycopg.Connection, config: DataChecks, relations: list[str] | None = None
) -> tuple[str, list[CheckResult]]:
    """Check every configured model (or ``relations``) and record the results as one run."""
    from include.monitoring.health import TABLES_DDL

    conn.execute(TABLES_DDL)
    run_id = f"checks-{uuid.uuid4().hex[:12]}"
    checked_at = datetime.now(UTC)
    results: list[CheckResult] = []
    for model in config.models:
        if relations is not None and model.relation not in relations:
            continue
        exists = conn.execute("select to_regclass(%s) is not null", (model.relation,)).fetchone()[0]
        if not exists:
            results.append(
                CheckResult(
                    model.relation, "exists", None, "exists", False, f"{model.relation} does not exist"
                )
            )
            continue
        results.extend(check_model(conn, model, config))
    with conn.cursor() as cur:
        cur.executemany(
            "insert into monitoring.data_checks values (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (run_id, checked_at, r.relation, r.check_name, r.value, r.threshold, r.passed, r.detail)
                for r in results
            ],
        )
    conn.commit()
    return run_id, results


def check_marts(warehouse_url: str) -> dict:
    """The data checks of monitoring.yaml on the marts just built, recorded in
    ``monitoring.data_checks``; raises (naming each failed check) when any fails, so the task that
    publishes the marts does not run and nothing downstream reads them."""
    from include.monitoring.settings import load_monitoring

    with psycopg.connect(warehouse_url) as conn:
        run_id, results = run_data_checks(conn, load_monitoring().data_checks)
    failed = [r.detail for r in results if not r.passed]
    if failed:
        raise RuntimeError(f"data checks {run_id} failed: " + "; ".join(failed))
    return {"run_id": run_id, "checks": len(results)}
