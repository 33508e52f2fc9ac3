"""End to end: the demo command, twice, through Airflow, dbt and the sandbox, on a fresh database.

Runs ``python -m include.cli demo`` (what ``make demo`` runs) with its own data folder, sandbox
port and warehouse database given by URL, then checks the numbers a user would: every raw customer
record is in the crosswalk, every crosswalk key is a customer, records are not merged wrongly
(against the generator's ground truth), pushes reached the CRM, and the second run changes nothing
but landing what the first run's flows created in the ERP and OA, and pushes nothing.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from itertools import combinations
from pathlib import Path

import httpx
import psycopg
import pytest

from include.config import PROJECT_ROOT, WAREHOUSE_URL_ENV, PgUrl
from include.registry import load_sources
from tests.conftest import create_database, drop_database

# The first test waits for both demo runs (started when the tests were collected; up to two
# DEMO_TIMEOUT_S when this module runs alone), beyond the suite's per-test timeout.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]

CUSTOMERS = 400
DEMO_TIMEOUT_S = 1500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: (source system, record id) of the records the sync-back flows created in a source system.
CREATED_BY_SYNC = (
    "select 'erp', target_record_id from ops.sync_state "
    "where flow = 'erp_new_customers' and target = 'erp_customer_master'"
)


def _golden(url: str) -> dict[str, str]:
    """Per customer, a hash of the golden values the flows send."""
    with psycopg.connect(url) as conn:
        return dict(
            conn.execute(
                "select customer_key, md5(row(mobile_e164, phone_e164, email, address, customer_type, "
                "source_systems)::text) from marts.dim_customer"
            ).fetchall()
        )


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


class DemoRuns:
    """The demo, twice, in a background thread, on its own warehouse and ERP databases, data folder,
    sandbox port and change-event channels. tests/conftest.py starts it once the session's tests are
    collected: the two runs are minutes of mostly one-core work in their own processes, and the rest
    of the suite runs meanwhile (run alone, after everything else, they were half the suite's time).
    A failed run's data folder stays, with the Airflow logs of every DAG it ran."""

    def __init__(self, server: PgUrl) -> None:
        self.data = Path(tempfile.mkdtemp(prefix="c360-e2e-"))
        self.warehouse = create_database(server, "c360_e2e")
        self.erp = create_database(server, "c360_e2e_erp")
        # Its own connections only: the demo derives them from the settings below, and one inherited
        # from the calling environment (say the marketing API of `make test`'s own sandbox) would send
        # the pushes to another sandbox.
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
        env.update(
            C360_DATA_DIR=str(self.data),
            C360_WAREHOUSE_URL=self.warehouse.url,
            C360_ERP_URL=self.erp.url,
            C360_SANDBOX_PORT=str(_free_port()),
            C360_DEMO_CUSTOMERS=str(CUSTOMERS),
            # the sandbox publishes its changes on the same Redis as the event tests listen on
            C360_EVENTS_CHANNEL_PREFIX=f"e2e_{uuid.uuid4().hex[:8]}.",
        )
        env.pop("AIRFLOW_HOME", None)
        self.env = env
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="e2e-demo")
        self._future = self._pool.submit(self._run)

    def _demo(self) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "include.cli", "demo"]
        with self._lock:
            if self._stopped:
                raise RuntimeError("the end-to-end runs were stopped")
            # its own process group: stop() ends the Airflow and dbt processes under it too
            self._proc = proc = subprocess.Popen(
                cmd,
                env=self.env,
                cwd=PROJECT_ROOT,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
        try:
            stdout, stderr = proc.communicate(timeout=DEMO_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._kill()
            raise
        assert proc.returncode == 0, (
            f"demo failed (logs: {self.data / 'airflow' / 'demo_logs'})\n" + stdout[-6000:] + stderr[-6000:]
        )
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    def _run(self) -> dict:
        first = self._demo()
        after_first = _counts(self.warehouse.url)
        golden_first = _golden(self.warehouse.url)
        second = self._demo()
        return {
            "env": self.env,
            "url": self.warehouse.url,
            "data": self.data,
            "first": first,
            "second": second,
            "after_first": after_first,
            "golden_first": golden_first,
        }

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait()

    def result(self) -> dict:
        """Both runs' outcome, once they are done (a failed run raises here)."""
        return self._future.result()

    def stop(self) -> None:
        """End a run still going, then remove the sandbox, the databases and the data folder."""
        with self._lock:
            self._stopped = True
            self._kill()
        self._pool.shutdown(wait=True)
        subprocess.run(
            [sys.executable, "-m", "include.sandbox", "stop"], env=self.env, cwd=PROJECT_ROOT, check=False
        )
        drop_database(self.warehouse)
        drop_database(self.erp)
        if self._future.exception() is None:
            shutil.rmtree(self.data, ignore_errors=True)


_runs: DemoRuns | None = None


def start_demo_runs() -> DemoRuns:
    """The session's end-to-end runs, started now if they are not yet."""
    global _runs
    if _runs is None:
        _runs = DemoRuns(PgUrl.parse(os.environ[WAREHOUSE_URL_ENV]))
    return _runs


def stop_demo_runs() -> None:
    global _runs
    if _runs is not None:
        _runs.stop()
        _runs = None


@pytest.fixture(scope="module")
def demo_runs(pg_server):
    runs = start_demo_runs()
    try:
        yield runs.result()
    finally:
        stop_demo_runs()


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
        created = set(conn.execute(CREATED_BY_SYNC).fetchall())
    # Besides the sandbox's records: the ERP customers our erp_new_customers flow created.
    assert created and created <= walked
    assert walked - created == truth
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
        # An ERP customer our erp_new_customers flow created is the true customer of the CRM
        # account(s) it was created for.
        created_for = conn.execute(
            "select distinct on (s.target_record_id) s.target_record_id, o.record_key "
            "from ops.sync_state s join ops.sync_outbox o "
            "on o.flow = 'crm_golden_contacts' and o.customer_key = s.record_key "
            "where s.flow = 'erp_new_customers' order by s.target_record_id, o.id"
        ).fetchall()
    for erp_id, crm_account in created_for:
        truth[("erp", erp_id)] = truth[("crm", crm_account)]
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
            "select sent, succeeded, rejected from ops.sync_runs where flow = 'crm_golden_contacts' "
            "order by started_at"
        ).fetchall()
        accepted = conn.execute(
            "select record_key, acked_payload->>'phone', acked_payload->>'email', "
            "acked_payload->>'c360_customer_key' from ops.sync_state "
            "where flow = 'crm_golden_contacts' order by record_key limit 5"
        ).fetchall()
    assert len(runs) == 2
    assert runs[0][0] > 0 and runs[0][1] > 0
    env = demo_runs["env"]
    base = f"http://127.0.0.1:{env['C360_SANDBOX_PORT']}"
    headers = {"Authorization": f"Bearer {(demo_runs['data'] / 'sandbox' / 'token').read_text().strip()}"}
    assert len(accepted) == 5
    for record_id, phone, email, key in accepted:
        account = httpx.get(f"{base}/crm/v1/accounts/{record_id}", headers=headers).json()
        if phone:
            assert account["phone"] == phone
        if email:
            assert account["email"] == email
        assert account["updated_by"] == "c360_sync"
        assert key


def test_second_run_is_idempotent(demo_runs):
    after_second = _counts(demo_runs["url"])
    golden_second = _golden(demo_runs["url"])
    changed = {k for k, h in golden_second.items() if demo_runs["golden_first"].get(k) != h}
    with psycopg.connect(demo_runs["url"]) as conn:
        created = dict(
            conn.execute(
                "select target, count(*) from ops.sync_state where flow in "
                "('erp_new_customers', 'oa_contract_approval_requests') group by target"
            ).fetchall()
        )
        last_runs = "(select distinct on (flow) run_id from ops.sync_runs order by flow, started_at desc)"
        second_runs = conn.execute(
            f"select count(*) from ops.sync_runs where run_id in {last_runs}"
        ).fetchone()
        resent = conn.execute(
            f"select flow, customer_key from ops.sync_outbox where last_run_id in {last_runs}"
        ).fetchall()
        freshness = conn.execute(
            "select status, count(*) from ops.freshness_checks "
            "where checked_at = (select max(checked_at) from ops.freshness_checks) group by 1"
        ).fetchall()
    # The second run lands what the first run's flows created (ERP customers, OA approval
    # requests) and nothing else; a created ERP customer identity resolution cannot link is new.
    expected = dict(demo_runs["after_first"])
    expected["raw_erp.customer_master"] += created["erp_customer_master"]
    expected["raw_oa.contract_approvals"] += created["oa_contract_approvals"]
    expected["marts.customer_crosswalk"] += created["erp_customer_master"]
    customers = after_second.pop("marts.dim_customer")
    first_customers = expected.pop("marts.dim_customer")
    assert after_second == expected
    assert first_customers <= customers <= first_customers + created["erp_customer_master"]
    # It pushes again only for customers whose golden values changed between the runs (those
    # records now also held by the ERP, say): an unchanged customer is never sent twice.
    assert second_runs == (6,)
    assert {key for _, key in resent} <= changed, "the second run re-sent unchanged golden records"
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
