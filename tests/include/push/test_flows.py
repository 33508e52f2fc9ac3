"""ERP creation, OA approval requests, call-center propagation, lead screening and erasure,
each against the real sandbox (HTTP systems) and the real ERP database."""

from __future__ import annotations

import contextlib
import sqlite3

import httpx
import psycopg
import pytest
from psycopg.types.json import Jsonb

from include.push.engine import run_flow
from include.push.erasure import request_erasure
from include.push.flows import ERASED_NAME
from include.push.targets import load_targets
from include.push.writers import ErpWriter, HttpWriter
from tests.include.conftest import World
from tests.include.push.conftest import Warehouse, customer_key
from tests.include.sandbox.helpers import app_rows


@contextlib.contextmanager
def writers(api: httpx.Client, world: World):
    registry = load_targets()
    with psycopg.connect(world.erp.url) as erp:
        found = {t.name: HttpWriter(api, t, 1000) for t in registry.targets if t.kind == "http"}
        found["erp_customer_master"] = ErpWriter(erp)
        yield found


def run(warehouse: Warehouse, api: httpx.Client, world: World, flow_name: str) -> dict:
    with warehouse.connect() as conn, writers(api, world) as found:
        return run_flow(conn, load_targets().flow(flow_name), found)


def apps(world: World, sql: str, args: tuple = ()) -> list[tuple]:
    with sqlite3.connect(world.data_dir / "sandbox" / "apps.sqlite") as conn:
        return conn.execute(sql, args).fetchall()


def erp(world: World, sql: str, args: tuple = ()) -> list[tuple]:
    with psycopg.connect(world.erp.url) as conn:
        return conn.execute(sql, args or None).fetchall()


@pytest.fixture(scope="module")
def holders(warehouse: Warehouse, world: World) -> dict[str, str]:
    """Customer 9 is also held by the ERP, OA, the call center and marketing."""
    erp_no, erp_version = erp(
        world,
        "select cust_no, modified_time from erp.customer_master where created_time < now() - "
        "interval '1 day' order by 1 limit 1",
    )[0]
    archive = app_rows(world.data_dir, "oa_customer_archive")[0]
    ids = {
        "erp": erp_no,
        "oa": archive["archive_id"],
        "callcenter": app_rows(world.data_dir, "callcenter_callers")[0]["caller_id"],
        "marketing": "lead-0009",
    }
    with warehouse.connect() as conn:
        for system, record_id in ids.items():
            conn.execute(
                "insert into marts.customer_crosswalk values (%s, %s, %s)",
                (system, record_id, customer_key(9)),
            )
        # Our last read of them: their current versions.
        conn.execute("insert into staging.stg_erp__customer_master values (%s, %s)", (erp_no, erp_version))
        conn.execute(
            "insert into staging.stg_oa__customer_archive values (%s, %s)", (ids["oa"], archive["updated_at"])
        )
    return ids


def test_new_important_crm_customer_gets_one_erp_record_and_one_oa_request(warehouse, api, world):
    account = warehouse.accounts[8]
    with warehouse.connect() as conn:
        conn.execute(
            "update marts.dim_customer set source_systems = 'crm' where customer_key = %s", (customer_key(8),)
        )
        conn.cursor().executemany(
            "insert into staging.stg_crm__opportunities values (%s, %s, %s)",
            [
                (account["id"], "proposal", 400000),
                (account["id"], "negotiation", 200000),
                (account["id"], "closed_lost", 9000000),
                (warehouse.accounts[11]["id"], "proposal", 100),
            ],
        )
    erp_before = erp(world, "select count(*) from erp.customer_master")[0][0]
    created = run(warehouse, api, world, "erp_new_customers")
    assert (created["sent"], created["succeeded"]) == (1, 1)
    assert erp(world, "select count(*) from erp.customer_master")[0][0] == erp_before + 1
    row = erp(
        world, "select cust_name, cust_type, contact_tel from erp.customer_master where cust_no like 'C360%'"
    )
    assert row == [(account["account_name"], "企业", "+8613900000008")]

    warehouse.set_golden(customer_key(8), email="changed.8@example.com")
    again = run(warehouse, api, world, "erp_new_customers")
    assert again["sent"] == 0  # create-only: one create per customer, ever
    assert erp(world, "select count(*) from erp.customer_master")[0][0] == erp_before + 1

    oa = run(warehouse, api, world, "oa_contract_approval_requests")
    assert (oa["sent"], oa["succeeded"]) == (1, 1)
    approval = apps(
        world,
        "select contract_amount, status from oa_contract_approvals where contract_no = ?",
        (f"C360-{customer_key(8)}",),
    )
    assert approval == [(600000.0, "pending")]


def test_call_center_phone_change_reaches_erp_and_oa(warehouse, api, world, holders):
    with warehouse.connect() as conn:
        conn.execute(
            "insert into staging.stg_callcenter__contact_changes values "
            "('CHG1', %s, 'phone', '139 1234 5678', now() - interval '1 hour'), "
            "('CHG0', %s, 'phone', '13800000000', now() - interval '2 hours')",
            (holders["callcenter"], holders["callcenter"]),
        )
    result = run(warehouse, api, world, "callcenter_contact_changes")
    assert (result["sent"], result["succeeded"]) == (2, 2), result["detail"]
    tel = erp(world, "select contact_tel from erp.customer_master where cust_no = %s", (holders["erp"],))
    assert tel == [("+8613912345678",)]
    oa = apps(world, "select contact_phone from oa_customer_archive where archive_id = ?", (holders["oa"],))
    assert oa == [("+8613912345678",)]
    assert run(warehouse, api, world, "callcenter_contact_changes")["sent"] == 0


def test_erp_edit_after_our_write_becomes_a_conflict(warehouse, api, world, holders):
    with psycopg.connect(world.erp.url) as conn:  # finance edits the customer after our push
        conn.execute(
            "update erp.customer_master set contact_tel = '+8613500000000', modified_time = now() "
            "where cust_no = %s",
            (holders["erp"],),
        )
    with warehouse.connect() as conn:
        conn.execute(
            "insert into staging.stg_callcenter__contact_changes "
            "values ('CHG2', %s, 'phone', '13922223333', now())",
            (holders["callcenter"],),
        )
    result = run(warehouse, api, world, "callcenter_contact_changes")
    assert (result["sent"], result["succeeded"], result["conflicts"]) == (2, 1, 1)
    assert erp(
        world, "select contact_tel from erp.customer_master where cust_no = %s", (holders["erp"],)
    ) == [("+8613500000000",)]
    oa = apps(world, "select contact_phone from oa_customer_archive where archive_id = ?", (holders["oa"],))
    assert oa == [("+8613922223333",)]
    with warehouse.connect() as conn:
        conflict = conn.execute(
            "select target, record_key, payload ->> 'contact_tel' from ops.sync_conflicts "
            "where resolved_at is null"
        ).fetchall()
    assert conflict == [("erp_customer_master", holders["erp"], "+8613922223333")]


def test_lead_screening_marks_existing_new_and_suppressed(warehouse, api, world, holders):
    with warehouse.connect() as conn:
        conn.execute("insert into marts.customer_crosswalk values ('marketing', 'lead-new', 'CNEW')")
        conn.execute(
            "insert into marts.dim_customer (customer_key, source_systems) values ('CNEW', 'marketing')"
        )
        conn.execute(
            "insert into staging.stg_marketing__leads values ('lead-0009', null, null, null), "
            "('lead-new', '+8613700000001', null, null), ('lead-optout', null, null, 'gone@example.com')"
        )
        conn.execute(
            "insert into ops.contact_suppressions (contact, reason) values ('gone@example.com', "
            "'unsubscribed')"
        )
    result = run(warehouse, api, world, "marketing_lead_screening")
    assert (result["sent"], result["succeeded"]) == (3, 3)
    rows = apps(
        world,
        "select lead_id, status, customer_key, suppressed, suppression_reason, suppressed_channels "
        "from mkt_lead_status order by 1",
    )
    assert rows == [
        ("lead-0009", "existing_customer", customer_key(9), 0, None, "[]"),
        ("lead-new", "new", None, 0, None, "[]"),
        ("lead-optout", "new", None, 1, "unsubscribed", '["email"]'),
    ]


def test_consent_withdrawn_anywhere_suppresses_the_customers_leads_per_channel(
    warehouse, api, world, monkeypatch, capsys
):
    """A contact on the suppression list belongs to a customer through any system's record or the
    golden record: every lead of that customer is suppressed on that contact's channel, whatever
    contacts the lead itself carries. Contacts are matched as staging holds them (E.164, lower case)."""
    from include.push.__main__ import main

    monkeypatch.setenv("C360_WAREHOUSE_URL", warehouse.url.url)
    accounts = warehouse.accounts
    with warehouse.connect() as conn:
        for i in (20, 21, 22, 23):  # one lead each, carrying only a mobile
            conn.execute(
                "insert into marts.customer_crosswalk values ('marketing', %s, %s)",
                (f"lead-c{i}", customer_key(i)),
            )
            conn.execute(
                "insert into staging.stg_marketing__leads values (%s, %s, null, null)",
                (f"lead-c{i}", f"+86137000000{i}"),
            )
        # 20: the CRM record's email; 21: a call-center record's mobile; 22: the golden email
        conn.execute(
            "update staging.stg_crm__accounts set email = 'c20@example.com' where account_id = %s",
            (accounts[20]["id"],),
        )
        conn.execute(
            "insert into staging.stg_callcenter__callers values ('CC-21', '+8613900000021', null, null)"
        )
        conn.execute(
            "insert into marts.customer_crosswalk values ('callcenter', 'CC-21', %s)", (customer_key(21),)
        )
    run(warehouse, api, world, "marketing_lead_screening")
    status = (
        "select lead_id, suppressed, suppression_reason, suppressed_channels from mkt_lead_status "
        "where lead_id like 'lead-c%' order by 1"
    )
    assert apps(world, status) == [(f"lead-c{i}", 0, None, "[]") for i in (20, 21, 22, 23)]

    # consent withdrawn, each typed the way an operator would
    assert main(["suppress", " C20@Example.COM ", "--reason", "unsubscribed"]) == 0
    assert main(["suppress", "139 0000 0021", "--reason", "no_consent"]) == 0
    assert main(["suppress", "golden.22@example.com", "--reason", "complaint"]) == 0
    assert main(["suppress", "not a contact", "--reason", "unsubscribed"]) == 2
    assert "nothing suppressed" in capsys.readouterr().err
    result = run(warehouse, api, world, "marketing_lead_screening")
    assert result["succeeded"] == 3  # only the three changed leads are sent again
    assert apps(world, status) == [
        ("lead-c20", 1, "unsubscribed", '["email"]'),
        ("lead-c21", 1, "no_consent", '["phone"]'),
        ("lead-c22", 1, "complaint", '["email"]'),
        ("lead-c23", 0, None, "[]"),
    ]

    # the lead's own mobile too: both channels, the strongest reason first
    assert main(["suppress", "+8613700000020", "--reason", "no_consent"]) == 0
    run(warehouse, api, world, "marketing_lead_screening")
    assert apps(world, status)[0] == ("lead-c20", 1, "no_consent", '["email", "phone"]')


def test_erasure_reaches_every_system_and_keeps_the_key(warehouse, api, world, holders):
    account = warehouse.accounts[9]
    other = warehouse.accounts[10]
    with warehouse.connect() as conn:
        conn.execute("create schema raw_crm")
        conn.execute(
            "create table raw_crm.accounts "
            "(_record_id text, _loaded_at timestamptz not null default now(), payload jsonb)"
        )
        conn.execute(
            "insert into raw_crm.accounts (_record_id, payload) values (%s, %s), (%s, %s), (%s, %s)",
            [
                account["id"],
                Jsonb(account),
                account["id"],
                Jsonb(account | {"phone": "13800000009"}),
                other["id"],
                Jsonb(other),
            ],
        )
        counts = request_erasure(conn, customer_key(9), "PIPL deletion request")
        raw = conn.execute(
            "select _record_id, payload ->> 'account_name', payload ->> 'phone', payload ->> 'industry' "
            "from raw_crm.accounts order by 1, 3"
        ).fetchall()
        golden = conn.execute(
            "select customer_key, customer_name, mobile_e164, email from marts.dim_customer where "
            "customer_key = %s",
            (customer_key(9),),
        ).fetchone()
    assert counts["marts.dim_customer"] == 1
    assert counts["raw_crm.accounts"] == 2  # every stored version of the record
    erased = [(account["id"], None, None, account["industry"])] * 2
    assert raw == sorted([*erased, (other["id"], other["account_name"], other["phone"], other["industry"])])
    assert golden == (customer_key(9), ERASED_NAME, None, None)

    result = run(warehouse, api, world, "erasure")
    assert (result["sent"], result["succeeded"]) == (5, 5), result
    assert apps(
        world, "select account_name, phone, email, address from crm_accounts where id = ?", (account["id"],)
    ) == [(ERASED_NAME, None, None, None)]
    assert erp(
        world,
        "select cust_name, contact_tel, contact_email, contact_person from erp.customer_master where "
        "cust_no = %s",
        (holders["erp"],),
    ) == [(ERASED_NAME, None, None, None)]
    assert apps(
        world,
        "select customer_name, contact_phone, legal_rep from oa_customer_archive where archive_id = ?",
        (holders["oa"],),
    ) == [(ERASED_NAME, None, None)]
    assert apps(
        world,
        "select name, phone, email from callcenter_callers where caller_id = ?",
        (holders["callcenter"],),
    ) == [(ERASED_NAME, None, None)]
    assert apps(
        world, "select suppressed, suppression_reason from mkt_lead_status where lead_id = 'lead-0009'"
    ) == [(1, "erasure")]
    # Other flows leave the erased customer alone.
    with warehouse.connect() as conn, writers(api, world) as found:
        crm = run_flow(conn, load_targets().flow("crm_golden_contacts"), found, dry_run=True)
    assert crm["considered"] == 59


def test_erasure_anonymises_the_golden_values_their_history_and_the_steward_reports(warehouse):
    """Beyond dim_customer: the per-attribute golden values, the provenance history (kept, values
    anonymised) and the reports holding the customer's values; other customers keep theirs."""
    erased, kept = customer_key(9), customer_key(10)
    golden = "customer_key text, attribute text, value text, source_system text"
    values = [
        (key, attribute, value, "crm")
        for key in (erased, kept)
        for attribute, value in [
            ("customer_name", "张三"),
            ("mobile_e164", "+8613900000009"),
            ("email", "zhang@example.cn"),
            ("city", "深圳"),
        ]
    ]
    with warehouse.connect() as conn:
        conn.execute("create schema intermediate")
        conn.execute("create schema snapshots")
        for table in ("intermediate.int_golden_attributes", "marts.customer_golden_provenance"):
            conn.execute(f"create table {table} ({golden})")
        conn.execute(
            f"create table snapshots.snap_customer_golden_provenance ({golden}, dbt_valid_from timestamp)"
        )
        conn.execute(
            "create table marts.identity_link_evidence (customer_key text, value_a text, value_b text)"
        )
        conn.execute("create table marts.customer_attribute_conflicts (customer_key text, values_seen text)")
        with conn.cursor() as cur:
            for table in ("intermediate.int_golden_attributes", "marts.customer_golden_provenance"):
                cur.executemany(f"insert into {table} values (%s, %s, %s, %s)", values)
            # two versions of each value in the history
            for version in ("2026-01-01", "2026-02-01"):
                cur.executemany(
                    "insert into snapshots.snap_customer_golden_provenance values (%s, %s, %s, %s, %s)",
                    [(*row, version) for row in values],
                )
            for key in (erased, kept):
                cur.execute(
                    "insert into marts.identity_link_evidence values (%s, '13900000009', '+8613900000009')",
                    (key,),
                )
                cur.execute(
                    "insert into marts.customer_attribute_conflicts values (%s, 'crm: 张三; erp: 张叁')",
                    (key,),
                )
        counts = request_erasure(conn, erased, "PIPL deletion request")

        def rows(sql: str) -> list[tuple]:
            return conn.execute(sql).fetchall()

        for table in ("intermediate.int_golden_attributes", "marts.customer_golden_provenance"):
            assert rows(f"select customer_key, attribute, value from {table} order by 1, 2") == sorted(
                [(erased, "city", "深圳")] + [(kept, a, v) for key, a, v, _ in values if key == kept]
            )
            assert counts[table] == 3
        history = rows(
            "select attribute, value, dbt_valid_from::date::text "
            f"from snapshots.snap_customer_golden_provenance where customer_key = '{erased}' order by 1, 3"
        )
        assert history == [
            (attribute, value, version)
            for attribute, value in [
                ("city", "深圳"),
                ("customer_name", ERASED_NAME),
                ("email", None),
                ("mobile_e164", None),
            ]
            for version in ("2026-01-01", "2026-02-01")
        ]
        assert rows(
            f"select count(*) from snapshots.snap_customer_golden_provenance where customer_key = '{kept}' "
            "and value in ('张三', '+8613900000009', 'zhang@example.cn')"
        ) == [(6,)]
        for table in ("marts.identity_link_evidence", "marts.customer_attribute_conflicts"):
            assert rows(f"select customer_key from {table}") == [(kept,)]


def test_every_flow_is_a_dbt_exposure_of_type_application():
    import yaml

    from include.config import DBT_PROJECT_DIR

    path = DBT_PROJECT_DIR / "models" / "marts" / "_marts__exposures.yml"
    exposures = {e["name"]: e for e in yaml.safe_load(path.read_text(encoding="utf-8"))["exposures"]}
    for flow in load_targets().flows:
        exposure = exposures[f"sync_{flow.name}"]
        assert exposure["type"] == "application"
        assert exposure["config"]["meta"]["targets"] == flow.targets


def test_operator_commands(warehouse, monkeypatch, capsys):
    from include.push.__main__ import main

    monkeypatch.setenv("C360_WAREHOUSE_URL", warehouse.url.url)
    assert main(["suppress", "Someone@Example.com", "--reason", "no_consent"]) == 0
    assert main(["erase", "CNOBODY", "--reason", "typo"]) == 2
    assert "no customer 'CNOBODY'" in capsys.readouterr().err
    assert main(["runs", "--flow", "erasure", "--limit", "1"]) == 0
    assert " erasure  success " in capsys.readouterr().out
    with warehouse.connect() as conn:
        assert conn.execute(
            "select reason from ops.contact_suppressions where contact = 'someone@example.com'"
        ).fetchall() == [("no_consent",)]
