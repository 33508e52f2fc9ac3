"""The incremental marts equal a full refresh on the same data, and a business-rule change rebuilds them.

The raw fixture (landed on 2024-03-10) is built whole; then one change batch lands: a new order with
its invoice, an order whose currency changed (its invoice's currency follows), a paid invoice, a new
ticket, a ticket the call center deleted, a new contract approval, a new lead, and a steward decision
that merges two customers (call-center caller CC6's customer into ERP customer C007's: the older key
survives, so facts and leads of the other are re-keyed). After the incremental run every incremental
mart is compared with a full refresh of the marts alone (identity and staging are not rebuilt, so the
same inputs); rows no change touched keep their row version. A new as-of date then changes the
receivables' rules hash: the run rebuilds fct_receivables whole.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from include.config import DBT_PROJECT_DIR, PgUrl
from tests.conftest import create_database, drop_database
from tests.dbt.conftest import run_dbt, schemas_listed_into_cache
from tests.dbt.raw_fixture import AS_OF_DATE, build_raw_database

#: mart -> its key columns (for the comparisons, ordered)
MARTS = {
    "fct_orders": "order_id",
    "fct_receivables": "invoice_id",
    "fct_service_tickets": "ticket_id",
    "fct_contracts": "approval_id",
    "fct_leads": "lead_id",
    "customer_crosswalk": "source_system, source_record_id",
    "dim_customer": "customer_key",
    "customer_attribute_conflicts": "customer_key, attribute",
    "customer_golden_provenance": "customer_key, attribute",
    "identity_link_evidence": "customer_key, record_id_a, record_id_b, rule_name, matched_field",
    # incremental_strategy 'sync' (macros/sync_strategy.sql): computed whole, only the difference written
    "customer_360": "customer_key",
    "customer_segments": "customer_key",
    "customer_churn_risk": "customer_key",
    "customer_complaint_anomalies": "customer_key",
    "payment_reminders": "invoice_id",
    "customer_alerts": "customer_key, alert_type",
}


def selector(mart: str) -> str:
    """The mart's node: a path, since the bare name customer_360 selects the whole project."""
    return f"path:models/marts/{mart}.sql"


#: and monthly_order_trends (a table), which sums the incremental int_customer_monthly_orders
SELECT = " ".join(f"+{selector(mart)}" for mart in (*MARTS, "monthly_order_trends"))
#: no lookback: everything here lands well apart from the runs, and a lookback would re-read the
#: previous run's changes (correct, but then the untouched-row checks could not tell)
VARS = {"as_of_date": AS_OF_DATE, "staging_lookback_minutes": 0}


class Warehouse:
    def __init__(self, db: PgUrl, tmp: Path) -> None:
        self.db, self.tmp = db, tmp

    def run(self, *extra: str, select: str = SELECT, **vars: object) -> None:
        args = ["run", "--select", select, "--vars", json.dumps({**VARS, **vars}), *extra]
        result = run_dbt(args, self.db, self.tmp)
        assert result.returncode == 0, result.stdout[-4000:]

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db.url) as conn:
            return conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: tuple = ()) -> None:
        with psycopg.connect(self.db.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def land(self, source: str, entity: str, record_id: str, payload: dict, deleted: bool = False) -> None:
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False)
        self.execute(
            f'insert into "raw_{source}"."{entity}" (_batch_id, _loaded_at, _source, _record_id, '
            "_content_hash, _source_updated_at, _deleted, payload) "
            "values ('marts-incremental', now(), %s, %s, %s, now(), %s, %s::jsonb)",
            (source, record_id, hashlib.md5(canonical.encode()).hexdigest(), deleted, canonical),
        )

    def mart(self, name: str) -> list[tuple]:
        return self.query(f"select * from marts.{name} as t order by {MARTS[name]}, md5(t::text)")

    def versions(self, name: str) -> dict[str, str]:
        key = MARTS[name].split(",")[0]
        return dict(self.query(f"select {key}::text, xmin::text from marts.{name}"))

    def key_of(self, record: str) -> str:
        system, record_id = record.split(":", 1)
        ((key,),) = self.query(
            "select customer_key from marts.customer_crosswalk "
            "where source_system = %s and source_record_id = %s",
            (system, record_id),
        )
        return key

    def assert_incremental_equals_full(self, marts: tuple[str, ...] = tuple(MARTS), **vars: object) -> None:
        incremental = {name: self.mart(name) for name in marts}
        self.run("--full-refresh", select=" ".join(map(selector, marts)), **vars)
        for name in marts:
            full = self.mart(name)
            assert incremental[name] == full, (
                f"{name}: only incremental {sorted(set(incremental[name]) - set(full))[:3]}, "
                f"only full {sorted(set(full) - set(incremental[name]))[:3]}"
            )


@pytest.fixture(scope="module")
def wh(pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    db = create_database(pg_server, "c360_martsincr")
    try:
        build_raw_database(db.url)
        yield Warehouse(db, tmp_path_factory.mktemp("dbt_marts_incremental"))
    finally:
        drop_database(db)


def test_incremental_marts_equal_a_full_refresh(wh: Warehouse) -> None:
    wh.run()
    watched = ("fct_receivables", "fct_orders", "fct_service_tickets", "customer_360")
    before = {name: wh.versions(name) for name in watched}
    table_oid = "select 'marts.customer_360'::regclass::oid"
    customer_360_oid = wh.query(table_oid)
    surviving, merged_away = wh.key_of("erp:C007"), wh.key_of("callcenter:CC6")
    assert surviving != merged_away
    tickets_of = "select count(*) from marts.fct_service_tickets where customer_key = %s"
    assert wh.query(tickets_of, (merged_away,)) == [(2,)]

    now = datetime.now(UTC).isoformat()
    order = {"cust_no": "C001", "order_date": "2024-03-09", "status": "completed", "modified_time": now}
    wh.land("erp", "sales_orders", "SO9", {**order, "order_no": "SO9", "amount": 700, "currency": "CNY"})
    wh.land("erp", "invoices", "INV9",
            {"invoice_no": "INV9", "cust_no": "C001", "order_no": "SO9", "invoice_date": "2024-03-09",
             "due_date": "2024-03-05", "amount": 700, "paid_amount": 0, "status": "issued",
             "modified_time": now})  # fmt: skip
    # SO2 is now booked in USD: INV2 (not landed again) takes the order's currency
    wh.land("erp", "sales_orders", "SO2",
            {**order, "order_no": "SO2", "cust_no": "C003", "order_date": "2024-02-01", "amount": "3,000",
             "currency": "USD"})  # fmt: skip
    wh.land("callcenter", "tickets", "TK9",
            {"ticket_id": "TK9", "caller_id": "CC1", "category": "inquiry", "priority": "normal",
             "status": "open", "subject": "报价", "opened_at": now, "updated_at": now})  # fmt: skip
    wh.land("callcenter", "tickets", "TK3", {"ticket_id": "TK3", "_deleted": True}, deleted=True)
    wh.land("oa", "contract_approvals", "AP2",
            {"approval_id": "AP2", "archive_id": "OA7", "contract_no": "HT-2024-002",
             "contract_amount": "5000", "status": "pending", "submitted_at": now,
             "updated_at": now})  # fmt: skip
    wh.land("marketing", "leads", "f9f9f9f9f9f9f9f9:1",
            {"lead_id": "f9f9f9f9f9f9f9f9:1", "lead_name": "张伟", "mobile": "13900001111",
             "source_file": "expo.csv", "source_row": 1})  # fmt: skip
    wh.execute(
        "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
        "values ('callcenter:CC6', 'erp:C007', 'same', '客户来电核实')"
    )
    wh.run()

    # the merge moved CC6's customer (its tickets, its lead, its OA record) to the surviving key
    assert wh.key_of("callcenter:CC6") == wh.key_of("erp:C007")
    merged_key = wh.key_of("erp:C007")
    assert wh.query("select customer_key from marts.fct_service_tickets where ticket_id = 'TK2'") == [
        (merged_key,)
    ]
    assert wh.query("select count(*) from marts.dim_customer where customer_key in (%s, %s)",
                    (surviving, merged_away)) == [(1,)]  # fmt: skip
    assert wh.query("select count(*) from marts.fct_service_tickets where ticket_id = 'TK3'") == [(0,)]
    assert wh.query("select currency from marts.fct_receivables where invoice_id = 'INV2'") == [("USD",)]
    # incremental: rows nothing touched kept their row version, the touched ones were rewritten
    after = {name: wh.versions(name) for name in before}
    assert after["fct_receivables"]["INV1"] == before["fct_receivables"]["INV1"]
    assert after["fct_receivables"]["INV2"] != before["fct_receivables"]["INV2"]
    assert after["fct_service_tickets"]["TK1"] == before["fct_service_tickets"]["TK1"]
    assert after["fct_service_tickets"]["TK2"] != before["fct_service_tickets"]["TK2"]
    # ops went into dbt's relation cache in the on-run-start hook, and no node thread listed a schema
    # (a race: a mart once compiled as if ops.incremental_progress did not exist, and rewrote every row)
    assert schemas_listed_into_cache(wh.tmp / "logs") == {"main": {"ops"}, "nodes": set()}
    # customer_360 ('sync'): the table stays (views on it survive the run); only the changed rows are
    # rewritten (C001's new order, the merged customer), the merged-away key's row is gone
    assert wh.query(table_oid) == customer_360_oid
    assert merged_away not in after["customer_360"] and surviving in after["customer_360"]
    rewritten = {key for key, row in after["customer_360"].items() if before["customer_360"].get(key) != row}
    assert {wh.key_of("erp:C001"), surviving} <= rewritten
    # and the two other customers the change batch touched: 4 of 20 rows in all
    assert len(rewritten) <= 4 < len(after["customer_360"]) - len(rewritten)
    wh.assert_incremental_equals_full()
    # the monthly trends sum int_customer_monthly_orders (kept per customer by delta): the same as
    # when that table is built whole
    trends = "select * from marts.monthly_order_trends order by order_month"
    months = "select * from intermediate.int_customer_monthly_orders order by customer_key, order_month"
    incremental = wh.query(trends), wh.query(months)
    wh.run("--full-refresh", select="path:models/intermediate/int_customer_monthly_orders.sql "
           "path:models/marts/monthly_order_trends.sql")  # fmt: skip
    assert (wh.query(trends), wh.query(months)) == incremental


def test_a_rule_change_rebuilds_the_mart_whole(wh: Warehouse) -> None:
    if not wh.query("select to_regclass('marts.fct_receivables') is not null")[0][0]:
        wh.run()
    # the marts alone: their inputs are built
    marts = ("fct_receivables", "fct_service_tickets")
    wh.run(select=" ".join(marts))
    before = wh.versions("fct_receivables")
    overdue = dict(wh.query("select invoice_id, days_overdue from marts.fct_receivables"))
    tickets = wh.versions("fct_service_tickets")
    wh.run(select=" ".join(marts), as_of_date="2024-03-20")
    # a new as-of day: every receivable rewritten (days overdue moved), tickets (no such rule) not
    after = wh.versions("fct_receivables")
    assert all(after[invoice] != version for invoice, version in before.items())
    assert wh.query("select days_overdue from marts.fct_receivables where invoice_id = 'INV2'") == [
        (overdue["INV2"] + 10,)
    ]
    assert wh.versions("fct_service_tickets") == tickets
    wh.assert_incremental_equals_full(marts, as_of_date="2024-03-20")


HISTORY = "snapshots.snap_customer_golden_provenance"
VERSION_COLUMNS = "customer_key, attribute, value, source_system, source_record_id"


def history_rows(wh: Warehouse) -> dict[tuple, str]:
    """Every history row (customer_key, attribute, dbt_valid_from) -> its row version."""
    rows = wh.query(f"select customer_key, attribute, dbt_valid_from, xmin::text from {HISTORY}")
    return {tuple(row[:3]): row[3] for row in rows}


def assert_history_current_is_golden(wh: Warehouse) -> None:
    """The open versions are exactly the golden values (what a dbt snapshot guarantees)."""
    current = wh.query(f"select {VERSION_COLUMNS} from {HISTORY} where dbt_valid_to is null order by 1, 2")
    golden = wh.query(f"select {VERSION_COLUMNS} from intermediate.int_golden_attributes order by 1, 2")
    assert current == golden


def test_golden_history_versions_the_touched_customers_only(wh: Warehouse) -> None:
    """snap_customer_golden_provenance (incremental, never rebuilt): a changed value closes its
    version and opens one at the same instant, a customer merged away has its versions closed,
    other customers' rows are not rewritten, an unchanged run writes nothing, and after a
    --full-refresh of everything upstream (whose change logs then start empty) the history is kept
    and still catches the change."""
    select = "+snap_customer_golden_provenance +customer_crosswalk"
    wh.run(select=select)
    assert_history_current_is_golden(wh)
    before = history_rows(wh)
    wh.run(select=select)
    assert history_rows(wh) == before

    def land_new_mobile(mobile: str) -> None:
        ((payload,),) = wh.query(
            "select payload from raw_callcenter.callers where _record_id = 'CC1' "
            "order by _loaded_at desc limit 1"
        )
        wh.land("callcenter", "callers", "CC1",
                {**payload, "phone": mobile, "updated_at": datetime.now(UTC).isoformat()})  # fmt: skip

    changed = wh.key_of("callcenter:CC1")
    singletons = wh.query(
        "select min(source_system || ':' || source_record_id) from marts.customer_crosswalk "
        "where customer_key <> %s group by customer_key having count(*) = 1 order by 1 limit 2",
        (changed,),
    )
    first, second = (record for (record,) in singletons)
    merged_keys = {wh.key_of(first), wh.key_of(second)}
    ((old_mobile,),) = wh.query(
        f"select value from {HISTORY} where customer_key = %s and attribute = 'mobile_e164' "
        "and dbt_valid_to is null",
        (changed,),
    )
    land_new_mobile("13900002222")
    wh.execute(
        "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
        "values (%s, %s, 'same', '客户核实')",
        (first, second),
    )
    wh.run(select=select)

    assert_history_current_is_golden(wh)
    mobile = wh.query(
        f"select value, dbt_valid_from, dbt_valid_to from {HISTORY} "
        "where customer_key = %s and attribute = 'mobile_e164' order by dbt_valid_from",
        (changed,),
    )
    assert [value for value, _, _ in mobile][-2:] == [old_mobile, "+8613900002222"]
    (_, _, closed_at), (_, opened_at, open_to) = mobile[-2:]
    assert closed_at == opened_at and open_to is None
    (survivor,) = {wh.key_of(first), wh.key_of(second)}
    (merged_away,) = merged_keys - {survivor}
    ((total, closed),) = wh.query(
        f"select count(*), count(dbt_valid_to) from {HISTORY} where customer_key = %s", (merged_away,)
    )
    assert total == closed > 0
    after = history_rows(wh)
    touched = {changed, *merged_keys}
    assert {k: v for k, v in after.items() if k[0] not in touched} == {
        k: v for k, v in before.items() if k[0] not in touched
    }

    # a full refresh of everything upstream: the history stays, the change is still caught
    land_new_mobile("13900003333")
    wh.run("--full-refresh", select=select)
    assert_history_current_is_golden(wh)
    refreshed = history_rows(wh)
    assert set(after) < set(refreshed) and len(refreshed) == len(after) + 1
    assert wh.query(
        f"select value from {HISTORY} where customer_key = %s and attribute = 'mobile_e164' "
        "order by dbt_valid_from",
        (changed,),
    )[-3:] == [(old_mobile,), ("+8613900002222",), ("+8613900003333",)]

    # a survivorship change rebuilds the golden values whole without logging a change per record:
    # the history compares everything and versions every value that moved
    import yaml  # noqa: PLC0415 - this check alone reads the project's vars

    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text(encoding="utf-8"))
    survivorship = project["vars"]["survivorship"]
    survivorship["mobile_e164"] = {"strategy": "source_priority", "priority": ["crm", "erp", "callcenter"]}
    wh.run(select=select, survivorship=survivorship)
    assert_history_current_is_golden(wh)
    assert wh.query(
        f"select value from {HISTORY} where customer_key = %s and attribute = 'mobile_e164' "
        "and dbt_valid_to is null",
        (changed,),
    ) != [("+8613900003333",)]


#: the scoped 'sync' marts (key change logs, macros/key_changes.sql) and the per-customer column a
#: tampered row carries
SCOPED = {
    "intermediate.int_customer_order_stats": "order_count",
    "intermediate.int_customer_monthly_orders": "orders",
    "intermediate.int_customer_lifecycle": "lifecycle_stage",
    "marts.customer_360": "customer_name",
}


def test_scoped_marts_recompute_only_the_customers_whose_inputs_changed(wh: Warehouse) -> None:
    """int_customer_order_stats, int_customer_monthly_orders, int_customer_lifecycle and customer_360
    recompute only the customers their inputs logged as changed: a row of another customer, tampered
    with, stays as it is (a full computation would repair it). A rebuilt input (a new table: its
    changes were not logged) makes them compute every customer again, and the log keeps only what
    some reader has not read."""
    wh.run()
    ordering = wh.key_of("erp:C001")
    # a customer with orders (order statistics) and one without (whose RFM quintiles, in
    # customer_segments, do not move when another customer orders)
    (with_orders,) = [key for (key,) in wh.query(
        "select customer_key from intermediate.int_customer_order_stats where customer_key <> %s "
        "order by customer_key limit 1", (ordering,))]  # fmt: skip
    (without_orders,) = [key for (key,) in wh.query(
        "select customer_key from marts.customer_360 where order_count = 0 "
        "order by customer_key limit 1")]  # fmt: skip
    other = {"order_count": with_orders, "orders": with_orders, "lifecycle_stage": without_orders,
             "customer_name": without_orders}  # fmt: skip
    tampered = {"order_count": 999, "orders": 999, "lifecycle_stage": "churned", "customer_name": "篡改"}
    with psycopg.connect(wh.db.url, autocommit=True) as conn:
        # behind the log's back (triggers off): a steward's update would be logged and recomputed
        conn.execute("set session_replication_role = replica")
        for table, column in SCOPED.items():
            conn.execute(f"update {table} set {column} = %s where customer_key = %s",
                         (tampered[column], other[column]))  # fmt: skip
    ((orders_before,),) = wh.query(
        "select order_count from intermediate.int_customer_order_stats where customer_key = %s", (ordering,)
    )
    wh.land("erp", "sales_orders", "SO10",
            {"order_no": "SO10", "cust_no": "C001", "order_date": "2024-03-08", "status": "completed",
             "amount": 99, "currency": "CNY", "modified_time": datetime.now(UTC).isoformat()})  # fmt: skip
    wh.run()

    assert wh.query(
        "select order_count from intermediate.int_customer_order_stats where customer_key = %s", (ordering,)
    ) == [(orders_before + 1,)]
    assert wh.query("select order_count from marts.customer_360 where customer_key = %s", (ordering,)) == [
        (orders_before + 1,)
    ]
    for table, column in SCOPED.items():
        values = wh.query(f"select distinct {column} from {table} where customer_key = %s", (other[column],))
        assert values == [(tampered[column],)], table
    # every consumer of fct_orders has read its entries: none kept
    assert wh.query("select count(*) from ops.key_changes where relation_name = 'marts.fct_orders'") == [(0,)]

    wh.run("--full-refresh", select=selector("fct_orders"))
    wh.run()
    for table, column in SCOPED.items():
        values = wh.query(f"select distinct {column} from {table} where customer_key = %s", (other[column],))
        assert values != [(tampered[column],)], table
    wh.assert_incremental_equals_full(("customer_360",))


def test_relationships_tests_check_the_rows_whose_keys_changed(wh: Warehouse) -> None:
    """A relationships test that passed checks, next time, only the child rows whose key (or whose
    parent's key) a write logged since: an orphan written behind the log's back goes unseen, a logged
    one fails the test, a failed test checks every row next time (finding both), and so does every
    test with var relationships_full_check."""
    wh.run()
    check = "relationships_fct_orders_customer_key__customer_key__ref_dim_customer_"

    def test_fct_orders(**vars: object) -> dict[str, tuple[str, int]]:
        args = ["test", "--select", selector("fct_orders"), "--vars", json.dumps({**VARS, **vars})]
        result = run_dbt(args, wh.db, wh.tmp)
        results = json.loads((wh.tmp / "target" / "run_results.json").read_text())["results"]
        assert results, result.stdout[-2000:]
        return {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in results}

    assert test_fct_orders()[check] == ("pass", 0)  # every row: it never passed before
    orphan = (
        "insert into marts.fct_orders (order_id, customer_key, order_date, order_month, currency, amount, "
        "amount_cny, net_amount_cny, order_status, is_cancelled, is_refund, loaded_at) "
        "values (%s, %s, '2024-03-01', '2024-03-01', 'CNY', 1, 1, 1, 'completed', false, false, now())"
    )

    def write_unlogged_orphan() -> None:
        with psycopg.connect(wh.db.url, autocommit=True) as conn:
            conn.execute("set session_replication_role = replica")  # triggers off: not logged
            conn.execute(orphan, ("SO-UNLOGGED", "C-NO-SUCH-CUSTOMER-1"))

    write_unlogged_orphan()
    assert test_fct_orders()[check] == ("pass", 0)  # only what was logged since it passed
    wh.execute(orphan, ("SO-LOGGED", "C-NO-SUCH-CUSTOMER-2"))
    assert test_fct_orders()[check] == ("fail", 1)
    assert test_fct_orders()[check] == ("fail", 2)  # after a failure: every row
    wh.execute("delete from marts.fct_orders where order_id in ('SO-UNLOGGED', 'SO-LOGGED')")
    assert test_fct_orders()[check] == ("pass", 0)
    # the periodic full check sees what the scoped one cannot
    write_unlogged_orphan()
    assert test_fct_orders()[check] == ("pass", 0)
    assert test_fct_orders(relationships_full_check=True)[check] == ("fail", 1)
    wh.execute("delete from marts.fct_orders where order_id = 'SO-UNLOGGED'")
    assert test_fct_orders()[check] == ("pass", 0)
