"""End to end: the demo command, twice, through Airflow, dbt and the sandbox, on a fresh database.

Runs ``python -m include.cli demo`` (what ``make demo`` runs) with its own data folder, sandbox
port and warehouse database given by URL, then checks the numbers a user would: every raw customer
record is in the crosswalk, every crosswalk key is a customer, records are not merged wrongly
(against the generator's ground truth), pushes reached the CRM, and the second run changes nothing.
"""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
from collections import defaultdict
from itertools import combinations

import httpx
import psycopg
import pytest

from include.config import PROJECT_ROOT
from include.registry import load_sources
from tests.conftest import create_database, drop_database

pytestmark = pytest.mark.e2e

CUSTOMERS = 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo(env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "include.cli", "demo"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-6000:]
    return proc


def _counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        out = {
            name: conn.execute(f"select count(*) from {name}").fetchone()[0]
            for name in ("marts.dim_customer", "marts.customer_crosswalk")
        }
        for source in load_sources():
            for entity in source.entities:
                out[f"{source.raw_schema}.{entity.name}"] = conn.execute(
                    f"select count(distinct _record_id) from {source.raw_schema}.{entity.name}"
                ).fetchone()[0]
    return out


@pytest.fixture(scope="module")
def demo_runs(pg_server, tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e")
    warehouse = create_database(pg_server, "c360_e2e")
    erp = create_database(pg_server, "c360_e2e_erp")
    env = dict(os.environ)
    env.update(
        C360_DATA_DIR=str(data),
        C360_WAREHOUSE_URL=warehouse.url,
        C360_ERP_URL=erp.url,
        C360_SANDBOX_PORT=str(_free_port()),
        C360_DEMO_CUSTOMERS=str(CUSTOMERS),
    )
    env.pop("AIRFLOW_HOME", None)
    try:
        first = _demo(env)
        after_first = _counts(warehouse.url)
        second = _demo(env)
        yield {
            "env": env,
            "url": warehouse.url,
            "data": data,
            "first": first,
            "second": second,
            "after_first": after_first,
        }
    finally:
        subprocess.run(
            [sys.executable, "-m", "include.sandbox", "stop"], env=env, cwd=PROJECT_ROOT, check=False
        )
        drop_database(warehouse)
        drop_database(erp)


def test_summary_is_printed(demo_runs):
    out = demo_runs["first"].stdout
    assert "Customer 360 Sync: demo summary" in out
    for source in load_sources():
        assert f"\n{source.name}" in out


def test_crosswalk_covers_every_raw_customer_record_once(demo_runs):
    with psycopg.connect(demo_runs["url"]) as conn:
        for source in load_sources():
            for entity in (e for e in source.entities if e.customer_entity):
                raw = {
                    r[0]
                    for r in conn.execute(
                        f"select distinct _record_id from {source.raw_schema}.{entity.name}"
                    )
                }
                walked = [
                    r[0]
                    for r in conn.execute(
                        "select source_record_id from marts.customer_crosswalk where source_system = %s",
                        (source.name,),
                    )
                ]
                assert len(raw) > 0, f"{source.name}.{entity.name} landed nothing"
                assert sorted(walked) == sorted(raw), f"{source.name}.{entity.name}"


def test_no_source_customer_record_is_lost(demo_runs):
    """Every customer record the sandbox holds (per the ground truth) reached the crosswalk."""
    with open(demo_runs["data"] / "ground_truth" / "links.csv", encoding="utf-8") as fh:
        truth = {(row["source_system"], row["source_record_id"]) for row in csv.DictReader(fh)}
    with psycopg.connect(demo_runs["url"]) as conn:
        walked = set(
            conn.execute("select source_system, source_record_id from marts.customer_crosswalk").fetchall()
        )
        quarantined = conn.execute("select count(*) from ops.quarantine").fetchone()[0]
    assert walked == truth
    assert quarantined == 0


def test_every_crosswalk_key_is_a_customer(demo_runs):
    with psycopg.connect(demo_runs["url"]) as conn:
        orphans = conn.execute(
            "select count(*) from marts.customer_crosswalk x "
            "left join marts.dim_customer d using (customer_key) where d.customer_key is null"
        ).fetchone()[0]
        keys, customers = conn.execute(
            "select (select count(distinct customer_key) from marts.customer_crosswalk), "
            "(select count(*) from marts.dim_customer)"
        ).fetchone()
    assert orphans == 0
    assert keys == customers


def test_identity_merges_are_right_against_ground_truth(demo_runs):
    truth = {}
    with open(demo_runs["data"] / "ground_truth" / "links.csv", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            truth[(row["source_system"], row["source_record_id"])] = row["true_customer_id"]
    with psycopg.connect(demo_runs["url"]) as conn:
        crosswalk = conn.execute(
            "select source_system, source_record_id, customer_key from marts.customer_crosswalk"
        ).fetchall()
    clusters = defaultdict(list)
    for system, record_id, key in crosswalk:
        clusters[key].append(truth[(system, record_id)])
    pairs = [(a == b) for members in clusters.values() for a, b in combinations(members, 2)]
    precision = sum(pairs) / len(pairs)
    true_customers = len(set(truth.values()))
    assert len(pairs) > 50, "exact matching merged almost nothing"
    assert precision >= 0.9, f"pairwise precision {precision:.3f}"
    assert true_customers <= len(clusters) * 1.2
    assert len(clusters) < len(crosswalk)


def test_pushes_reached_the_crm(demo_runs):
    with psycopg.connect(demo_runs["url"]) as conn:
        runs = conn.execute(
            "select sent, accepted, rejected from ops.push_runs order by started_at"
        ).fetchall()
        accepted = conn.execute(
            "select record_id, payload->>'phone', payload->>'email' from ops.push_log "
            "where status in ('created', 'updated') order by pushed_at limit 5"
        ).fetchall()
    assert len(runs) == 2
    assert runs[0][0] > 0 and runs[0][1] > 0
    env = demo_runs["env"]
    base = f"http://127.0.0.1:{env['C360_SANDBOX_PORT']}"
    headers = {"Authorization": f"Bearer {(demo_runs['data'] / 'sandbox' / 'token').read_text().strip()}"}
    for record_id, phone, email in accepted:
        account = httpx.get(f"{base}/crm/v1/accounts/{record_id}", headers=headers).json()
        if phone:
            assert account["phone"] == phone
        if email:
            assert account["email"] == email
        assert account["updated_by"] == "c360_sync"


def test_second_run_is_idempotent(demo_runs):
    after_second = _counts(demo_runs["url"])
    assert after_second == demo_runs["after_first"]
    with psycopg.connect(demo_runs["url"]) as conn:
        second_push = conn.execute(
            "select sent, already_sent from ops.push_runs order by started_at desc limit 1"
        ).fetchone()
        freshness = conn.execute(
            "select status, count(*) from ops.freshness_checks "
            "where checked_at = (select max(checked_at) from ops.freshness_checks) group by 1"
        ).fetchall()
    assert second_push == (0, 0), "the second run pushed again: golden records and the CRM did not converge"
    assert dict(freshness) == {"pass": sum(len(s.entities) for s in load_sources())}


def test_marts_cover_the_landed_activity(demo_runs):
    """Issue 5 marts on the sandbox: every landed order is a fact (after two runs, the second one
    incremental), every keyed fact points at a customer, and the summary reports them."""
    with psycopg.connect(demo_runs["url"]) as conn:
        live_orders = conn.execute("select count(*) from staging.stg_erp__sales_orders").fetchone()[0]
        assert conn.execute("select count(*) from marts.fct_orders").fetchone()[0] == live_orders > 0
        for fact in ("fct_orders", "fct_receivables", "fct_service_tickets", "fct_contracts", "fct_leads"):
            orphans = conn.execute(
                f"select count(*) from marts.{fact} f left join marts.dim_customer d using (customer_key) "
                "where f.customer_key is not null and d.customer_key is null"
            ).fetchone()[0]
            assert orphans == 0, fact
        customers, wide, staged = conn.execute(
            "select (select count(*) from marts.dim_customer), (select count(*) from marts.customer_360), "
            "(select sum(customers) from marts.lifecycle_stats)"
        ).fetchone()
        assert customers == wide == staged
    assert "alerts today (customer_alerts):" in demo_runs["second"].stdout
