"""Injection-looking values through the whole pipeline: source systems -> extract -> dbt -> push.

A small generated sandbox gets hostile names, addresses and ids in every source system (SQL
quotes and comments, dollar quoting, backslashes, Jinja, format and JNDI placeholders, the string
'NULL', quotes in company names, emoji and CJK), through the systems' own write API where they
have one, their database (ERP), their store (call-center change log, CRM opportunities) and a lead
file. Then the real extract, ``dbt build`` and every push flow run, and the test checks that every
table is still there, the values arrive byte-exact in raw, staging and the golden record, the
pushes carry them exactly, and the pushes changed nothing but what they acknowledged.
"""

from __future__ import annotations

import csv
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from include.config import PgUrl
from include.extract.file_drops import extract_files
from include.extract.http_api import make_client
from include.extract.runner import extract_entity
from include.push.engine import run_flow
from include.push.targets import load_targets
from include.push.writers import ErpWriter, HttpWriter
from include.registry import load_sources
from include.sandbox.generator import generate
from include.sandbox.stores import cc_ts, crm_ts
from tests.conftest import create_database, drop_database
from tests.dbt.conftest import run_dbt
from tests.include.conftest import TOKEN, serve, use_data_dir
from tests.include.sandbox.helpers import app_rows

CUSTOMERS = 120

# Each survives staging's standardisation unchanged (no full-width forms, no runs of whitespace).
HOSTILE = [
    "Robert'); drop table raw_crm.accounts;--",
    '" or 1=1 --',
    "$$; select pg_sleep(30); $$",
    "O\\'Brien \\\\ Söhne \\",
    "{{ config(materialized='table') }}{% do run_query('drop schema marts cascade') %}",
    "%s %(name)s %% {0} {{ var('as_of_date') }}",
    "${jndi:ldap://127.0.0.1:1389/a}",
    "NULL",
    "北京\"星辰\"科技'有限'公司",
    "🚀星辰科技😀有限公司 ✓ 東京 서울",
    "'; update crm_accounts set phone = null; --",
    "<script>alert('x')</script>",
]
HOSTILE_ID = "001X'); drop table crm_accounts;--"
#: (target, table in the sandbox store, its key column) of every record a push can change.
TARGET_TABLES = {
    "crm_accounts": ("crm_accounts", "id"),
    "oa_customer_archive": ("oa_customer_archive", "archive_id"),
    "oa_contract_approvals": ("oa_contract_approvals", "approval_id"),
    "callcenter_callers": ("callcenter_callers", "caller_id"),
    "marketing_lead_status": ("mkt_lead_status", "lead_id"),
}
#: Bookkeeping the sandbox and the ERP keep about writes (idempotency keys, our custom fields).
WRITE_LOG_TABLES = {"api_idempotency_keys", "api_requests", "crm_account_ext"}
STAMPS = {"updated_at", "updated_by", "modified_time"}


def _sqlite(db: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """Every table of the sandbox store: key (first column) -> row."""
    with sqlite3.connect(db) as conn:
        conn.row_factory = sqlite3.Row
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")]
        return {
            t: {str(row[0]): dict(row) for row in conn.execute(f'select * from "{t}"')}
            for t in sorted(tables)
        }


def _erp(url: str) -> dict[str, dict[str, dict[str, Any]]]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        tables = [
            r["table_name"]
            for r in cur.execute(
                "select table_name from information_schema.tables where table_schema = 'erp' order by 1"
            )
        ]
        return {
            t: {str(next(iter(row.values()))): row for row in cur.execute(f'select * from erp."{t}"')}
            for t in tables
        }


def _relations(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {
            f"{s}.{t}"
            for s, t in conn.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema not in ('pg_catalog', 'information_schema')"
            )
        }


def _inject(base_url: str, data_dir: Path, erp: PgUrl, landing: Path) -> dict[str, Any]:
    """Hostile values into every source system; returns what went where."""
    apps_db = data_dir / "sandbox" / "apps.sqlite"
    crm = app_rows(data_dir, "crm_accounts")
    archives = app_rows(data_dir, "oa_customer_archive")
    callers = app_rows(data_dir, "callcenter_callers")
    now = datetime.now(UTC).replace(microsecond=0)
    put: dict[str, Any] = {}
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as api:
        # CRM, through its API: three accounts renamed, and a new one with a hostile id
        updates = [
            {"id": a["id"], "account_name": HOSTILE[i], "address": HOSTILE[-1 - i]}
            for i, a in enumerate(crm[:3])
        ]
        created = {
            "id": HOSTILE_ID,
            "account_name": HOSTILE[8],
            "account_type": "company",
            "address": HOSTILE[3],
            "phone": "+8613912340001",
            "email": "hostile.one@example.org",
        }
        body = api.post("/crm/v1/accounts/bulk-upsert", json={"records": [*updates, created]}).json()
        assert [r["status"] for r in body["results"]] == ["updated"] * 3 + ["created"], body
        put["crm"] = {u["id"]: (u["account_name"], u["address"]) for u in [*updates, created]}
        # OA and the call center, through their bulk-write APIs
        for path, key, rows, fields in (
            ("/oa/api/customer-archive/bulk-write", "archive_id", archives[:2], ("customer_name", "address")),
            ("/cc/api/v2/callers/bulk-write", "caller_id", callers[:2], ("name", "company_name")),
        ):
            records = [
                {"key": r[key], "fields": {fields[0]: HOSTILE[4 + i], fields[1]: HOSTILE[6 + i]}}
                for i, r in enumerate(rows)
            ]
            body = api.post(path, json={"mode": "update", "records": records}).json()
            assert {r["status"] for r in body["results"]} == {"updated"}, body
            put[path] = {r["key"]: (r["fields"][fields[0]], r["fields"][fields[1]]) for r in records}
    with sqlite3.connect(apps_db) as conn:
        # an open opportunity big enough for the ERP / OA create flows, on the new account
        conn.execute(
            "insert into crm_opportunities (id, account_id, name, stage, amount, expected_close_date, "
            "created_at, updated_at) values (?, ?, ?, 'negotiation', 900000, '2027-01-31', ?, ?)",
            ("006HOSTILE000001", HOSTILE_ID, HOSTILE[2], crm_ts(now), crm_ts(now)),
        )
        # agents typing hostile addresses on callers whose customer the CRM also holds (per the
        # generator's ground truth): the call-center change log (no API writes it)
        with open(data_dir / "ground_truth" / "links.csv", encoding="utf-8") as fh:
            links = list(csv.DictReader(fh))
        in_crm = {r["true_customer_id"] for r in links if r["source_system"] == "crm"}
        chosen = [
            r["source_record_id"]
            for r in links
            if r["source_system"] == "callcenter" and r["true_customer_id"] in in_crm
        ]
        chosen = [c for c in chosen if c not in {x["caller_id"] for x in callers[:2]}][:6]
        changes = {caller: HOSTILE[(5 + i) % len(HOSTILE)] for i, caller in enumerate(chosen)}
        conn.executemany(
            "insert into callcenter_contact_changes (change_id, caller_id, field, old_value, new_value, "
            "agent_id, changed_at) values (?, ?, 'address', null, ?, 'AGENT-1', ?)",
            [
                (f"CHGHOSTILE{i:03d}", caller, value, cc_ts(now))
                for i, (caller, value) in enumerate(changes.items())
            ],
        )
    put["changes"] = changes
    # the ERP, in its database
    with psycopg.connect(erp.url) as conn:
        rows = conn.execute("select cust_no from erp.customer_master order by cust_no limit 2").fetchall()
        for i, (cust_no,) in enumerate(rows):
            conn.execute(
                "update erp.customer_master set cust_name = %s, reg_address = %s, modified_time = now() "
                "where cust_no = %s",
                (HOSTILE[9 + i], HOSTILE[i], cust_no),
            )
        put["erp"] = {r[0]: (HOSTILE[9 + i], HOSTILE[i]) for i, r in enumerate(rows)}
    # marketing: a lead export whose cells need CSV quoting
    folder = landing / "marketing"
    with open(folder / "hostile_leads.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["姓名", "手机", "邮箱", "公司名称", "日期"])
        for i, value in enumerate(HOSTILE[:6]):
            writer.writerow([value, f"1390000{i:04d}", "", HOSTILE[-1 - i], "2026-01-05"])
    put["leads"] = {HOSTILE[i]: HOSTILE[-1 - i] for i in range(6)}
    return put


@pytest.fixture(scope="module")
def pipeline(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory):
    data_dir = tmp_path_factory.mktemp("hostile")
    warehouse = create_database(pg_server, "c360_hostile")
    erp = create_database(pg_server, "c360_hostile_erp")
    try:
        with pytest.MonkeyPatch.context() as mp:
            use_data_dir(mp, data_dir)
            mp.setenv("C360_PII_SALT", "test-salt")
            generate(CUSTOMERS, 5, erp_url=erp.url)
            apps_db = data_dir / "sandbox" / "apps.sqlite"
            with serve(apps_db) as base_url:
                put = _inject(base_url, data_dir, erp, data_dir / "landing")
                sandbox_tables = set(_sqlite(apps_db))
                erp_tables = set(_erp(erp.url))
                with make_client(base_url, TOKEN) as client:
                    for source in load_sources():
                        for entity in source.entities:
                            if source.kind == "files":
                                extract_files(source, entity, warehouse.url)
                            elif source.kind == "database":
                                extract_entity(source, entity, warehouse.url, source_db_url=erp.url)
                            else:
                                extract_entity(source, entity, warehouse.url, client=client)
                # everything the push flows read (the marts they start on and all upstream), with
                # the data tests; the logic's unit tests run in tests/dbt
                select = ["+dim_customer", "+customer_crosswalk", "path:models/staging"]
                build = run_dbt(
                    ["build", "--select", *select, "--indirect-selection", "cautious"]
                    + ["--exclude-resource-type", "unit_test"],
                    warehouse,
                    data_dir,
                )
                assert build.returncode == 0, build.stdout[-6000:]
                built = _relations(warehouse.url)
                before = (_sqlite(apps_db), _erp(erp.url))
                registry = load_targets()
                with (
                    make_client(base_url, TOKEN) as client,
                    psycopg.connect(erp.url) as erp_conn,
                    psycopg.connect(warehouse.url) as conn,
                ):
                    writers = {
                        t.name: HttpWriter(client, t, 1000) if t.kind == "http" else ErpWriter(erp_conn)
                        for t in registry.targets
                    }
                    runs = {flow.name: run_flow(conn, flow, writers) for flow in registry.flows}
                after = (_sqlite(apps_db), _erp(erp.url))
            yield {
                "url": warehouse.url,
                "put": put,
                "runs": runs,
                "sandbox_tables": sandbox_tables,
                "erp_tables": erp_tables,
                "built": built,
                "before": before,
                "after": after,
            }
    finally:
        drop_database(warehouse)
        drop_database(erp)


def _query(pipeline, sql: str, params: tuple = ()) -> list[tuple]:
    with psycopg.connect(pipeline["url"]) as conn:
        return conn.execute(sql, params).fetchall()


def test_every_table_still_exists(pipeline):
    after_sandbox, after_erp = pipeline["after"]
    assert set(after_sandbox) == pipeline["sandbox_tables"]
    assert set(after_erp) >= pipeline["erp_tables"]
    relations = _relations(pipeline["url"])
    assert relations >= pipeline["built"], "a push dropped a warehouse relation"
    for source in load_sources():
        for entity in source.entities:
            assert f"{source.raw_schema}.{entity.name}" in relations
    assert {"marts.dim_customer", "marts.customer_crosswalk", "staging.stg_crm__accounts"} <= relations
    # and each still holds its data
    assert _query(pipeline, "select count(*) from raw_crm.accounts")[0][0] > CUSTOMERS // 2
    assert len(after_sandbox["crm_accounts"]) > CUSTOMERS // 2


def test_hostile_values_land_byte_exact_in_raw_staging_and_golden(pipeline):
    put = pipeline["put"]
    crm = dict(
        (r[0], r[1:])
        for r in _query(pipeline, "select account_id, customer_name, address from staging.stg_crm__accounts")
    )
    raw = dict(
        (r[0], r[1:])
        for r in _query(
            pipeline,
            "select distinct on (_record_id) _record_id, payload ->> 'account_name', payload ->> 'address' "
            "from raw_crm.accounts order by _record_id, _seq desc",
        )
    )
    for account_id, values in put["crm"].items():
        assert raw[account_id] == values
        assert crm[account_id] == values
    oa = dict(
        (r[0], r[1:])
        for r in _query(
            pipeline, "select archive_id, customer_name, address from staging.stg_oa__customer_archive"
        )
    )
    for key, values in put["/oa/api/customer-archive/bulk-write"].items():
        assert oa[key] == values
    callers = dict(
        (r[0], r[1:])
        for r in _query(
            pipeline, "select caller_id, caller_name, company_name from staging.stg_callcenter__callers"
        )
    )
    for key, values in put["/cc/api/v2/callers/bulk-write"].items():
        assert callers[key] == values
    erp = dict(
        (r[0], r[1:])
        for r in _query(
            pipeline, "select customer_id, customer_name, address from staging.stg_erp__customer_master"
        )
    )
    for key, values in put["erp"].items():
        assert erp[key] == values
    leads = dict(
        _query(
            pipeline,
            "select lead_name, company_name from staging.stg_marketing__leads "
            "where source_file = 'hostile_leads.csv'",
        )
    )
    assert leads == put["leads"]
    changes = dict(
        _query(
            pipeline,
            "select caller_id, new_value from staging.stg_callcenter__contact_changes "
            "where change_id like 'CHGHOSTILE%%'",
        )
    )
    assert changes == put["changes"]
    # the new CRM account is a customer of its own: its golden record carries its values exactly
    golden = _query(
        pipeline,
        "select d.customer_name, d.address from marts.customer_crosswalk x "
        "join marts.dim_customer d using (customer_key) "
        "where x.source_system = 'crm' and x.source_record_id = %s",
        (HOSTILE_ID,),
    )
    assert golden == [put["crm"][HOSTILE_ID]]
    assert _query(pipeline, "select count(*) from ops.quarantine")[0][0] == 0


def test_pushes_carry_the_values_exactly(pipeline):
    put = pipeline["put"]
    _, erp_after = pipeline["after"]
    assert all(run["status"] in ("success", "partial") for run in pipeline["runs"].values()), pipeline["runs"]
    # the hostile CRM customer (big open opportunity, unknown to the ERP) got an ERP record
    created = _query(
        pipeline,
        "select s.target_record_id, s.acked_payload from ops.sync_state s join marts.customer_crosswalk x "
        "on x.customer_key = s.record_key and x.source_system = 'crm' and x.source_record_id = %s "
        "where s.flow = 'erp_new_customers'",
        (HOSTILE_ID,),
    )
    assert len(created) == 1
    cust_no, payload = created[0]
    name, address = put["crm"][HOSTILE_ID]
    assert (payload["cust_name"], payload["reg_address"]) == (name, address)
    assert (
        erp_after["customer_master"][cust_no]["cust_name"],
        erp_after["customer_master"][cust_no]["reg_address"],
    ) == (name, address)
    # the agents' hostile addresses reached the other systems' records of those customers
    pushed = _query(
        pipeline,
        "select s.target, s.record_key, s.acked_payload ->> case s.target when 'erp_customer_master' "
        "then 'reg_address' else 'address' end from ops.sync_state s "
        "where s.flow = 'callcenter_contact_changes' and s.acked_payload ? "
        "case s.target when 'erp_customer_master' then 'reg_address' else 'address' end",
    )
    hostile_pushed = [(t, k, v) for t, k, v in pushed if v in put["changes"].values()]
    # The CRM's copies meet a conflict: crm_golden_contacts wrote those accounts moments before in
    # the same run. The conflict keeps the payload, exactly, for the run after the next extract.
    held = _query(
        pipeline,
        "select target, record_key, payload ->> 'address' from ops.sync_conflicts "
        "where flow = 'callcenter_contact_changes'",
    )
    carried = hostile_pushed + [c for c in held if c[2] in put["changes"].values()]
    assert {t for t, _, _ in hostile_pushed} >= {"erp_customer_master", "oa_customer_archive"}, pushed
    assert {v for _, _, v in carried} == set(put["changes"].values())
    sandbox_after, _ = pipeline["after"]
    for target, key, value in hostile_pushed:
        if target == "erp_customer_master":
            assert erp_after["customer_master"][key]["reg_address"] == value
        else:
            table, _ = TARGET_TABLES[target]
            assert sandbox_after[table][key]["address"] == value


def _acked(pipeline) -> dict[str, dict[str, list[dict]]]:
    """target -> record key or created id -> every payload a flow had acknowledged for it."""
    out: dict[str, dict[str, list[dict]]] = {}
    for target, record_key, target_id, payload in _query(
        pipeline, "select target, record_key, target_record_id, acked_payload from ops.sync_state"
    ):
        for key in {record_key, target_id} - {None}:
            out.setdefault(target, {}).setdefault(key, []).append(payload)
    return out


def _check_changes(name: str, before: dict, after: dict, acked: dict[str, list[dict]]) -> int:
    """Every changed or new row is one a push acknowledged, changed only to acknowledged values."""
    changed = 0
    for key, row in after.items():
        old = before.get(key)
        if old == row:
            continue
        changed += 1
        assert key in acked, f"{name}: {key!r} changed but no push acknowledged it"
        for column, value in row.items():
            if column in STAMPS or (old is not None and old.get(column) == value):
                continue
            sent = [p[column] for p in acked[key] if column in p]
            if old is None and not sent:
                continue  # a created record's own defaults (id, created_at, status columns)
            assert any(value == s or str(value) == str(s) for s in sent) or (
                value is None and None in sent
            ), (name, key, column, value, sent)
    assert set(before) <= set(after), f"{name}: a push deleted records"
    return changed


def test_the_pushes_changed_nothing_they_did_not_acknowledge(pipeline):
    (sandbox_before, erp_before), (sandbox_after, erp_after) = pipeline["before"], pipeline["after"]
    acked = _acked(pipeline)
    changed = 0
    targets_by_table = {table: target for target, (table, _) in TARGET_TABLES.items()}
    for table, rows in sandbox_after.items():
        if table in WRITE_LOG_TABLES:
            continue
        if table in targets_by_table:
            changed += _check_changes(
                table, sandbox_before.get(table, {}), rows, acked.get(targets_by_table[table], {})
            )
        else:
            assert rows == sandbox_before[table], f"sandbox table {table} changed"
    for table, rows in erp_after.items():
        if table == "customer_master":
            changed += _check_changes("erp", erp_before[table], rows, acked.get("erp_customer_master", {}))
        elif table != "api_idempotency_keys":
            assert rows == erp_before[table], f"ERP table {table} changed"
    assert changed > 0
    # every extracted raw record is still there, once per version
    assert _query(pipeline, "select count(*) from raw_crm.accounts where _record_id = %s", (HOSTILE_ID,)) == [
        (1,)
    ]
