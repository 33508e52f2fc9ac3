"""monitoring.pipeline_health on constructed states, and volume anomalies from a real extraction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.types.json import Jsonb

from include.extract.runner import extract_entity
from include.monitoring.alerts import alert_on_health
from include.monitoring.data_checks import run_data_checks
from include.monitoring.health import ensure_monitoring, health_checks, measure_push_latency, pipeline_health
from include.monitoring.settings import load_monitoring
from include.registry import Entity, Source, load_sources
from tests.conftest import create_database, drop_database
from tests.receivers import alert_connections, webhook_receiver

NOW = datetime.now(UTC)


@pytest.fixture(autouse=True)
def _now():
    """Ages are built from the test's own start, not from when the module was collected (a long
    suite runs a test minutes after collecting it)."""
    global NOW
    NOW = datetime.now(UTC)


SETTINGS = load_monitoring()
SOURCES = load_sources()


@pytest.fixture
def conn(fresh_db):
    with psycopg.connect(fresh_db.url) as conn:
        ensure_monitoring(conn, SETTINGS, SOURCES)
        yield conn


def add_run(conn, source, entity, *, ago, status="success", rows=100, quarantined=0, mode="incremental"):
    started = NOW - ago - timedelta(minutes=1)
    conn.execute(
        "insert into ops.extract_runs (run_id, source, entity, sync_mode, rows_read, rows_quarantined, "
        "started_at, finished_at, status) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (f"r-{uuid.uuid4().hex[:8]}", source, entity, mode, rows, quarantined, started, NOW - ago, status),
    )


def all_sources_extracted(conn, ago=timedelta(minutes=10)):
    for source in SOURCES:
        for entity in source.entities:
            add_run(conn, source.name, entity.name, ago=ago)


FLOW, TARGET = "crm_golden_contacts", "crm_accounts"


def add_sync_run(conn, *, ago, outcomes, flow=FLOW, target=TARGET, unavailable=False):
    """One finished run of ``flow`` as the sync engine leaves it: per record ``A<i>`` its outcome
    (``updated``, ``rejected`` or ``conflict``) in the outbox, sync state, rejects and conflicts.
    A record still open in the outbox (queued or rejected before) is retried, not queued again.
    ``unavailable``: the target was down, everything stays queued."""
    run_id = f"{flow}-{uuid.uuid4().hex[:12]}"
    at = NOW - ago
    counts = {s: sum(o == s for o in outcomes) for s in ("updated", "rejected", "conflict")}
    run_status = (
        "target_unavailable"
        if unavailable
        else "partial"
        if counts["rejected"] or counts["conflict"]
        else "success"
    )
    send = {"target": target, "error": "connection refused" if unavailable else None}
    conn.execute(
        "insert into ops.sync_runs (run_id, flow, dry_run, started_at, finished_at, considered, queued, "
        "sent, succeeded, rejected, conflicts, unavailable, status, detail) "
        "values (%s, %s, false, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            run_id,
            flow,
            at - timedelta(seconds=30),
            at,
            len(outcomes),
            len(outcomes),
            0 if unavailable else len(outcomes),
            0 if unavailable else counts["updated"],
            0 if unavailable else counts["rejected"],
            0 if unavailable else counts["conflict"],
            len(outcomes) if unavailable else 0,
            run_status,
            Jsonb({f"send_{target}": send}),
        ),
    )
    for i, outcome in enumerate(outcomes):
        key = f"A{i}"
        open_row = conn.execute(
            "select id from ops.sync_outbox where flow = %s and target = %s and record_key = %s "
            "and status in ('pending', 'rejected')",
            (flow, target, key),
        ).fetchone()
        outbox_id = (
            open_row[0]
            if open_row
            else conn.execute(
                "insert into ops.sync_outbox (flow, target, record_key, customer_key, payload, payload_hash, "
                "enqueued_at, updated_at) values (%s, %s, %s, %s, '{}', 'h', %s, %s) returning id",
                (flow, target, key, f"k{i}", at - timedelta(seconds=20), at - timedelta(seconds=20)),
            ).fetchone()[0]
        )
        if unavailable:
            continue
        new_status = {"updated": "acked", "rejected": "rejected", "conflict": "conflict"}[outcome]
        conn.execute(
            "update ops.sync_outbox set status = %s, attempts = attempts + 1, last_run_id = %s, "
            "updated_at = %s where id = %s",
            (new_status, run_id, at, outbox_id),
        )
        if outcome == "updated":
            conn.execute(
                "insert into ops.sync_state (flow, target, record_key, acked_hash, acked_payload, acked_at) "
                "values (%s, %s, %s, 'h', '{}', %s) on conflict (flow, target, record_key) "
                "do update set acked_at = excluded.acked_at",
                (flow, target, key, at),
            )
            conn.execute(
                "update ops.sync_rejects set resolved_at = %s where flow = %s and target = %s "
                "and record_key = %s and resolved_at is null",
                (at, flow, target, key),
            )
        elif outcome == "rejected":
            conn.execute(
                "insert into ops.sync_rejects (run_id, flow, target, record_key, outbox_id, payload, error, "
                "attempt, rejected_at) values (%s, %s, %s, %s, %s, '{}', 'invalid phone', 1, %s)",
                (run_id, flow, target, key, outbox_id, at),
            )
        else:
            conn.execute(
                "insert into ops.sync_conflicts (run_id, flow, target, record_key, outbox_id, payload, "
                "payload_hash, detected_at) values (%s, %s, %s, %s, %s, '{}', 'h', %s)",
                (run_id, flow, target, key, outbox_id, at),
            )
    return run_id


def status(conn):
    conn.commit()
    return {system: row["status"] for system, row in pipeline_health(conn).items()}


def test_sources_turn_amber_then_red_as_their_last_success_ages(conn):
    assert set(status(conn).values()) == {"red"}  # nothing ever extracted: unknown is red
    all_sources_extracted(conn)
    assert status(conn) == {s.name: "green" for s in SOURCES}

    crm = next(s for s in SOURCES if s.name == "crm")
    warn, error = crm.freshness.warn_after_hours, crm.freshness.error_after_hours
    conn.execute("delete from ops.extract_runs where source = 'crm' and entity = 'contacts'")
    add_run(conn, "crm", "contacts", ago=timedelta(hours=warn, minutes=30))
    assert status(conn)["crm"] == "amber"
    assert status(conn)["erp"] == "green"  # a stale source colours only its own system
    conn.execute(
        "update ops.extract_runs set finished_at = %s where source = 'crm' and entity = 'contacts'",
        (NOW - timedelta(hours=error + 1),),
    )
    assert status(conn)["crm"] == "red"
    summary = pipeline_health(conn)["crm"]["summary"]
    assert summary.startswith("RED crm/last_success_age_h: last successful extract")

    # a failed run after the last success does not make the source stale, but is counted
    add_run(conn, "erp", "invoices", ago=timedelta(minutes=1), status="failed")
    assert status(conn)["erp"] == "amber"


def test_quarantine_rate_is_judged_over_the_last_day(conn):
    all_sources_extracted(conn)
    add_run(conn, "oa", "customer_archive", ago=timedelta(minutes=5), rows=1000, quarantined=30, mode="full")
    checks = {(c["system"], c["check_name"]): c for c in health_checks(conn)}
    rate = checks[("oa", "quarantine_rate_pct")]
    # 30 of the oa runs' rows: the constructed runs read 100 each (2 entities) + 1000
    assert float(rate["value"]) == pytest.approx(100 * 30 / 1200, abs=0.01)
    assert rate["status"] == "amber"


def flow_checks(conn):
    conn.commit()
    return {c["check_name"]: c for c in health_checks(conn) if c["area"] == "flow"}


def test_flows_reject_backlog_outbox_age_and_last_push(conn):
    all_sources_extracted(conn)
    assert flow_checks(conn) == {}  # a flow that never ran has nothing to judge
    add_sync_run(conn, ago=timedelta(hours=8), outcomes=["updated", "rejected", "rejected"])
    # A1 rejected again (waiting since the first run), A2 acknowledged this time
    add_sync_run(conn, ago=timedelta(minutes=5), outcomes=["updated", "rejected", "updated"])
    checks = flow_checks(conn)
    assert {c["subject"] for c in checks.values()} == {"crm_golden_contacts.crm_accounts"}
    assert {c["system"] for c in checks.values()} == {"crm"}  # the target's system, from targets.yaml
    assert checks["reject_backlog"]["value"] == 1
    assert checks["reject_backlog"]["status"] == "amber"
    assert float(checks["outbox_age_h"]["value"]) == pytest.approx(8, abs=0.05)
    assert checks["outbox_age_h"]["status"] == "amber"
    assert float(checks["last_push_age_h"]["value"]) == pytest.approx(5 / 60, abs=0.01)
    assert checks["last_push_age_h"]["status"] == "green"
    assert checks["open_conflicts"]["value"] == 0
    assert status(conn)["crm"] == "amber"

    add_sync_run(conn, ago=timedelta(minutes=3), outcomes=["rejected"] * 60)
    assert flow_checks(conn)["reject_backlog"]["value"] == 60
    assert status(conn)["crm"] == "red"
    add_sync_run(conn, ago=timedelta(minutes=1), outcomes=["updated"] * 60)  # every reject fixed
    checks = flow_checks(conn)
    assert checks["reject_backlog"]["value"] == 0
    assert checks["outbox_age_h"]["value"] == 0
    assert status(conn)["crm"] == "green"


def test_conflicts_and_an_unavailable_target(conn):
    all_sources_extracted(conn)
    add_sync_run(conn, ago=timedelta(hours=30), outcomes=["updated", "conflict"])
    # the CRM was down for the later runs: nothing acknowledged, everything still queued
    add_sync_run(conn, ago=timedelta(hours=7), outcomes=["updated", "updated", "updated"], unavailable=True)
    add_sync_run(conn, ago=timedelta(minutes=2), outcomes=["updated", "updated", "updated"], unavailable=True)
    checks = flow_checks(conn)
    assert checks["open_conflicts"]["value"] == 1
    assert checks["open_conflicts"]["status"] == "amber"
    assert float(checks["last_push_age_h"]["value"]) == pytest.approx(30, abs=0.05)  # not the failed runs
    assert checks["last_push_age_h"]["status"] == "red"
    assert float(checks["outbox_age_h"]["value"]) == pytest.approx(7, abs=0.05)  # A2 queued 7 h ago
    assert checks["outbox_age_h"]["status"] == "amber"
    assert "RED crm_golden_contacts.crm_accounts/last_push_age_h" in pipeline_health(conn)["crm"]["summary"]

    conn.execute("delete from ops.sync_runs")
    add_sync_run(conn, ago=timedelta(minutes=1), outcomes=["updated"], unavailable=True)
    checks = flow_checks(conn)
    assert checks["last_push_age_h"]["status"] == "red"  # ran, but never pushed
    assert checks["last_push_age_h"]["detail"] == "no successful push recorded"


def test_end_to_end_latency_per_push_run(conn):
    all_sources_extracted(conn, ago=timedelta(days=2))  # the pipeline has run for two days
    all_sources_extracted(conn)
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.customer_crosswalk (source_system text, source_record_id text, "
        "customer_key text, source_updated_at timestamptz)"
    )
    run_id = add_sync_run(conn, ago=timedelta(minutes=1), outcomes=["updated"] * 3 + ["rejected"])
    pushed = conn.execute(
        "select updated_at from ops.sync_outbox where last_run_id = %s and status = 'acked' limit 1",
        (run_id,),
    ).fetchone()[0]
    conn.execute(
        "insert into marts.customer_crosswalk values ('erp', 'E0', 'k0', %s), ('crm', 'C0', 'k0', %s), "
        "('oa', 'O1', 'k1', %s), ('oa', 'O2', 'k1', %s), ('erp', 'E2', 'k2', %s), ('crm', 'C3', 'k3', %s)",
        (
            pushed - timedelta(minutes=90),
            pushed - timedelta(minutes=30),  # k0: its newest change before the push, 30 min
            pushed - timedelta(minutes=10),  # k1: 10 min ...
            pushed + timedelta(minutes=5),  # ... a change after the push is not what was pushed
            pushed - timedelta(days=300),  # k2: changed before the pipeline existed: counted from the
            # first ERP extract, two days (and a minute) before the push
            pushed - timedelta(minutes=1),  # k3: rejected, so never pushed: not measured
        ),
    )
    assert measure_push_latency(conn) == 1  # the run's one target
    assert measure_push_latency(conn) == 0  # each run measured once
    flow, target, n, p50, worst = conn.execute(
        "select flow, target, measured_records, p50_min, max_min from monitoring.push_latency "
        "where run_id = %s",
        (run_id,),
    ).fetchone()
    first_erp = conn.execute("select min(started_at) from ops.extract_runs where source = 'erp'").fetchone()[
        0
    ]
    assert (flow, target) == (FLOW, TARGET)
    assert n == 3
    assert float(p50) == pytest.approx(30)
    assert float(worst) == pytest.approx((pushed - first_erp).total_seconds() / 60)
    check = next(c for c in health_checks(conn) if c["check_name"] == "e2e_latency_p95_min")
    assert check["status"] == "red"  # p95 is the two-day-old change: past 12 h

    # a later run that acknowledged nothing (nothing changed) keeps the last measured latency
    add_sync_run(conn, ago=timedelta(seconds=10), outcomes=[])
    assert measure_push_latency(conn) == 1
    check = next(c for c in health_checks(conn) if c["check_name"] == "e2e_latency_p95_min")
    assert check["status"] == "red"


def test_data_checks_catch_duplicates_nulls_and_a_shrunken_mart(conn):
    all_sources_extracted(conn)
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.customer_crosswalk (source_system text, source_record_id text, customer_key text)"
    )
    conn.execute(
        "create table marts.dim_customer (customer_key text, customer_type text, customer_name text, "
        "mobile_e164 text, email text)"
    )
    conn.execute(
        "insert into marts.customer_crosswalk select 'crm', 'A' || i, 'k' || i from generate_series(1, 100) i"
    )
    conn.execute(
        "insert into marts.dim_customer select 'k' || i, 'company', '公司' || i, '+8613800000000', "
        "'a@b.cn' from generate_series(1, 100) i"
    )
    _, results = run_data_checks(conn, SETTINGS.data_checks)
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]
    assert status(conn).get("warehouse") == "green"

    conn.execute("delete from marts.dim_customer where customer_key::text > 'k5'")  # 100 -> 55 rows: -45%
    conn.execute("insert into marts.dim_customer values ('k1', 'company', null, null, null)")
    _, results = run_data_checks(conn, SETTINGS.data_checks)
    failed = {r.check_name: r.detail for r in results if not r.passed}
    assert set(failed) == {"row_count", "duplicate_keys", "null_pct:customer_name"}
    assert "1 duplicated key(s) on (customer_key)" in failed["duplicate_keys"]
    assert status(conn)["warehouse"] == "red"


@pytest.fixture
def shop(pg_server):
    db = create_database(pg_server, "c360_shop")
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create schema shop")
        conn.execute("create table shop.customers (id text primary key, name text, modified timestamptz)")
        conn.execute(
            "insert into shop.customers select 'c' || i, '客户' || i, now() - i * interval '1 minute' "
            "from generate_series(1, 1000) i"
        )
    yield db
    drop_database(db)


SHOP = Source(
    name="shop",
    label="门店",
    kind="database",
    description="a test shop database",
    owner="tests",
    schedule="0 * * * *",
    freshness={"warn_after_hours": 1, "error_after_hours": 2},
    conn_id="shop_db",
    schema="shop",
    entities=[
        Entity(
            name="customers",
            table="customers",
            key="id",
            updated_at="modified",
            sync_mode="full",
            fields=["id", "name", "modified"],
        )
    ],
)


def test_a_generated_drop_in_volume_is_an_anomaly_and_alerts(shop, fresh_db, monkeypatch):
    """Full reads of a source that suddenly lost most of its records: amber, then red, alerted once each."""
    with psycopg.connect(fresh_db.url) as conn:
        ensure_monitoring(conn, SETTINGS, (SHOP,))

    def extract_and_look() -> dict:
        extract_entity(SHOP, SHOP.entities[0], fresh_db.url, source_db_url=shop.url)
        with psycopg.connect(fresh_db.url) as conn:
            return {c["check_name"]: c for c in health_checks(conn) if c["system"] == "shop"}

    for _ in range(SETTINGS.volume.min_history + 1):
        checks = extract_and_look()
    assert checks["volume_ratio_low"]["status"] == "green"
    assert float(checks["volume_ratio_low"]["value"]) == 1.0

    with webhook_receiver() as hook:
        alert_connections(monkeypatch, hook)
        with psycopg.connect(shop.url, autocommit=True) as source_db:
            source_db.execute(
                "delete from shop.customers where id in (select id from shop.customers limit 600)"
            )
            checks = extract_and_look()
            assert float(checks["volume_ratio_low"]["value"]) == pytest.approx(0.4)
            assert checks["volume_ratio_low"]["status"] == "amber"
            assert "customers 400 rows vs usual 1000" in checks["volume_ratio_low"]["detail"]
            with psycopg.connect(fresh_db.url) as conn:
                first = alert_on_health(conn, SETTINGS)
                again = alert_on_health(conn, SETTINGS)
            source_db.execute(
                "delete from shop.customers where id in (select id from shop.customers limit 300)"
            )
            checks = extract_and_look()
            assert checks["volume_ratio_low"]["status"] == "red"  # 100 vs a median of 1000
            with psycopg.connect(fresh_db.url) as conn:
                worse = alert_on_health(conn, SETTINGS)
    key = "health:shop:shop:volume_ratio_low"
    assert first == {key: "firing"}
    assert again == {}
    assert worse == {key: "escalated"}
    texts = hook.texts()
    assert len(texts) == 2
    assert "volume ratio low" in texts[0] and "400 rows vs usual 1000" in texts[0]


def test_the_plugin_serves_the_health_view(conn, fresh_db):
    from c360_monitoring.health_page import create_app
    from c360_monitoring.plugin import C360MonitoringPlugin
    from fastapi.testclient import TestClient

    all_sources_extracted(conn)
    conn.execute("update ops.extract_runs set finished_at = now() - interval '100 hours' where source = 'oa'")
    conn.commit()
    client = TestClient(create_app(fresh_db.url))
    body = client.get("/api").json()
    assert body["systems"]["oa"]["status"] == "red"
    assert body["systems"]["crm"]["status"] == "green"
    page = client.get("/").text
    assert '<td>oa</td><td><b style="color:#d93025">RED</b>' in page
    assert "last_success_age_h" in page
    (app,) = C360MonitoringPlugin.fastapi_apps
    assert app["url_prefix"] == C360MonitoringPlugin.external_views[0]["href"].rstrip("/")
