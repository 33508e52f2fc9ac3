"""The change history (from a snapshot-shaped relation) and pipeline health, on a real PostgreSQL."""

from __future__ import annotations

import json

import psycopg

from include.bi.warehouse_data import Relations, change_history, pipeline_health
from include.config import PgUrl

SNAPSHOT_DDL = """
create schema snapshots;
create table snapshots.snap_dim_customer (
    customer_key text, customer_name text, id_card_hash text, uscc text, mobile_e164 text, email text,
    city text, dbt_valid_from timestamptz, dbt_valid_to timestamptz
);
insert into snapshots.snap_dim_customer values
    ('C1', '张伟', 'hash-of-zhangwei', null, '+8613812345678', 'zw@example.com', '北京',
     '2026-01-01 08:00+00', '2026-02-01 08:00+00'),
    ('C1', '张伟', 'hash-of-zhangwei', null, '+8613987654321', 'zw@example.com', '上海',
     '2026-02-01 08:00+00', null),
    ('C2', '旧公司', null, '91110000X', null, null, '深圳', '2026-01-05 08:00+00', '2026-03-01 08:00+00');
"""


def test_versions_become_masked_changes_newest_first(fresh_db: PgUrl) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        conn.execute(SNAPSHOT_DDL)
        history = change_history(conn, Relations(schema="marts"), ["C1", "C2", "C3"])
    assert set(history) == {"C1", "C2"}
    changed, created = history["C1"]
    assert (changed["kind"], created["kind"]) == ("changed", "created")
    assert changed["at"].startswith("2026-02-01")
    assert changed["changes"] == [
        {"attribute": "mobile_e164", "old": "138****5678", "new": "139****4321"},
        {"attribute": "city", "old": "北京", "new": "上海"},
    ]
    assert {c["attribute"] for c in created["changes"]} == {"customer_name", "mobile_e164", "email", "city"}
    # a version closed with no successor: merged away or erased
    assert [e["kind"] for e in history["C2"]] == ["closed", "created"]
    text = json.dumps(history, ensure_ascii=False)
    assert "hash-of-zhangwei" not in text and "91110000X" not in text and "13812345678" not in text


def test_no_history_relation_means_no_history(fresh_db: PgUrl) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        assert change_history(conn, Relations(schema="bi"), ["C1"]) == {}


def test_pipeline_health_per_system(fresh_db: PgUrl) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        rel = Relations(schema="marts")
        assert pipeline_health(conn, rel) == []  # monitoring not set up yet
        conn.execute(
            "create schema monitoring; create table monitoring.pipeline_health as "
            "select * from (values ('warehouse', 'green', 0, 0, 'all checks green'), "
            "('crm', 'red', 1, 0, 'RED crm/last_success_age_h: 80 h')) "
            "as t(system, status, red_checks, amber_checks, summary)"
        )
        assert [(h["system"], h["status"], h["red_checks"]) for h in pipeline_health(conn, rel)] == [
            ("crm", "red", 1),
            ("warehouse", "green", 0),
        ]


CHANGE_ROWS_DDL = """
create schema bi;
create table bi.customer_change_history (
    customer_key text, version_number integer, change_type text, attribute text, old_value text,
    new_value text, source_system text, source_record_id text, source_updated_at timestamptz,
    changed_at timestamptz
);
insert into bi.customer_change_history values
    ('C1', 1, 'created', 'customer_name', null, '张*', 'erp', 'E1', null, '2026-01-01 08:00+00'),
    ('C1', 1, 'created', 'mobile_e164', null, '138****5678', 'crm', 'A1', null, '2026-01-01 08:00+00'),
    ('C1', 1, 'created', 'id_card_hash', null, null, null, null, null, '2026-01-01 08:00+00'),
    ('C1', 2, 'changed', 'mobile_e164', '138****5678', '+8613987654321', 'callcenter', 'CC1', null,
     '2026-02-01 08:00+00'),
    ('C1', 2, 'changed', 'address', '北京市海淀区***', '上海市浦东新区***', 'crm', 'A1', null,
     '2026-02-01 08:00+00'),
    ('C1', 2, 'changed', 'has_marketing_opt_in', 'false', 'true', null, null, null, '2026-02-01 08:00+00'),
    ('C2', 1, 'created', 'city', null, '深圳', 'oa', 'O1', null, '2026-01-05 08:00+00'),
    ('C2', 1, 'closed', null, null, null, null, null, null, '2026-03-01 08:00+00');
"""


def test_change_rows_of_the_bi_view_become_events(fresh_db: PgUrl) -> None:
    with psycopg.connect(fresh_db.url) as conn:
        conn.execute(CHANGE_ROWS_DDL)
        history = change_history(conn, Relations(schema="bi"), ["C1", "C2"])
    changed, created = history["C1"]
    assert (changed["kind"], created["kind"]) == ("changed", "created")
    # identity numbers and the address are not shown; a value the view left unmasked is masked here
    assert changed["changes"] == [
        {"attribute": "has_marketing_opt_in", "old": "false", "new": "true", "source": None},
        {"attribute": "mobile_e164", "old": "138****5678", "new": "139****4321", "source": "callcenter"},
    ]
    assert [c["attribute"] for c in created["changes"]] == ["customer_name", "mobile_e164"]
    assert [e["kind"] for e in history["C2"]] == ["closed", "created"]
    assert history["C2"][0]["changes"] == []
