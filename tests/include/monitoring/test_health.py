"""monitoring.pipeline_health on constructed states, and volume anomalies from a real extraction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from include.extract.runner import extract_entity
from include.monitoring.alerts import alert_on_health
from include.monitoring.data_checks import run_data_checks
from include.monitoring.health import ensure_monitoring, health_checks, measure_push_latency, pipeline_health
from include.monitoring.settings import load_monitoring
from include.registry import Entity, Source, load_sources
from tests.conftest import create_database, drop_database
from tests.receivers import alert_connections, webhook_receiver

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


def add_push(conn, target, *, ago, statuses):
    run_id = f"push-{uuid.uuid4().hex[:8]}"
    at = NOW - ago
    conn.execute(
        "insert into ops.push_runs values (%s, %s, %s, %s, %s, %s, %s, %s, 0)",
        (
            run_id,
            target,
            at,
            at,
            len(statuses),
            len(statuses),
            sum(s != "rejected" for s in statuses),
            sum(s == "rejected" for s in statuses),
        ),
    )
    for i, status in enumerate(statuses):
        conn.execute(
            "insert into ops.push_log (run_id, target, record_id, customer_key, payload, payload_hash, "
            "status, pushed_at) values (%s, %s, %s, %s, '{}', 'h', %s, %s)",
            (run_id, target, f"A{i}", f"k{i}", status, at),
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


def test_flows_reject_backlog_outbox_age_and_last_push(conn):
    all_sources_extracted(conn)
    add_push(conn, "crm.accounts", ago=timedelta(hours=8), statuses=["updated", "rejected", "rejected"])
    # A1 rejected again (waiting since the first run), A2 accepted this time
    add_push(conn, "crm.accounts", ago=timedelta(minutes=5), statuses=["updated", "rejected", "updated"])
    checks = {c["check_name"]: c for c in health_checks(conn) if c["area"] == "flow"}
    assert checks["reject_backlog"]["value"] == 1
    assert checks["reject_backlog"]["status"] == "amber"
    assert float(checks["outbox_age_h"]["value"]) == pytest.approx(8, abs=0.05)
    assert checks["outbox_age_h"]["status"] == "amber"
    assert checks["last_push_age_h"]["status"] == "green"
    assert status(conn)["crm"] == "amber"

    add_push(conn, "crm.accounts", ago=timedelta(minutes=1), statuses=["rejected"] * 60)
    assert status(conn)["crm"] == "red"
    conn.execute("delete from ops.push_log where status = 'rejected'")
    assert status(conn)["crm"] == "green"


def test_end_to_end_latency_per_push_run(conn):
    all_sources_extracted(conn, ago=timedelta(days=2))  # the pipeline has run for two days
    all_sources_extracted(conn)
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.customer_crosswalk (source_system text, source_record_id text, "
        "customer_key text, source_updated_at timestamptz)"
    )
    run_id = add_push(conn, "crm.accounts", ago=timedelta(minutes=1), statuses=["updated"] * 3)
    pushed = conn.execute(
        "select pushed_at from ops.push_log where run_id = %s limit 1", (run_id,)
    ).fetchone()[0]
    conn.execute(
        "insert into marts.customer_crosswalk values ('erp', 'E0', 'k0', %s), ('crm', 'C0', 'k0', %s), "
        "('oa', 'O1', 'k1', %s), ('oa', 'O2', 'k1', %s), ('erp', 'E2', 'k2', %s)",
        (
            pushed - timedelta(minutes=90),
            pushed - timedelta(minutes=30),  # k0: its newest change before the push, 30 min
            pushed - timedelta(minutes=10),  # k1: 10 min ...
            pushed + timedelta(minutes=5),  # ... a change after the push is not what was pushed
            pushed - timedelta(days=300),  # k2: changed before the pipeline existed: counted from the
        ),  # first ERP extract, two days (and a minute) before the push
    )
    assert measure_push_latency(conn) == 1
    assert measure_push_latency(conn) == 0  # each run measured once
    n, p50, worst = conn.execute(
        "select measured_records, p50_min, max_min from monitoring.push_latency where run_id = %s", (run_id,)
    ).fetchone()
    first_erp = conn.execute("select min(started_at) from ops.extract_runs where source = 'erp'").fetchone()[
        0
    ]
    assert n == 3
    assert float(p50) == pytest.approx(30)
    assert float(worst) == pytest.approx((pushed - first_erp).total_seconds() / 60)
    check = next(c for c in health_checks(conn) if c["check_name"] == "e2e_latency_p95_min")
    assert check["status"] == "red"  # p95 is the two-day-old change: past 12 h


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
