"""fct_orders built incrementally equals a full refresh on the same data, and rewrites only what changed.

The fixture is landed with one extra order whose ERP customer has not landed yet; then a second landing
brings a new version of an order, a new order, that late customer (the order gets its key), a
tombstone (an order the ERP deleted) and a call-center caller that joins an existing customer (identity
resolution may re-key that customer's orders).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from include.config import PgUrl
from tests.conftest import create_database, drop_database
from tests.dbt.conftest import FIXTURE_VARS, run_dbt
from tests.dbt.raw_fixture import build_raw_database

SELECT = ["--select", "+fct_orders", "--vars", FIXTURE_VARS]
ORDERS = "select * from marts.fct_orders order by order_id"


def land(url: str, table: str, key: str, payload: dict, at: datetime, deleted: bool = False) -> None:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"insert into {table} (_batch_id, _loaded_at, _source, _record_id, _content_hash, "
            "_source_updated_at, _deleted, payload) "
            # landed now (the landing's clock, which incremental models track), changed at `at`
            "values ('incremental-test', now(), %s, %s, %s, %s, %s, %s::jsonb)",
            (
                table.split(".")[0].removeprefix("raw_"),
                key,
                hashlib.md5(canonical.encode()).hexdigest(),
                at,
                deleted,
                canonical,
            ),
        )


def dbt_ok(args: list[str], db: PgUrl, tmp: Path) -> None:
    result = run_dbt(args, db, tmp)
    assert result.returncode == 0, result.stdout[-4000:]


@pytest.fixture(scope="module")
def incremental_db(
    pg_server: PgUrl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PgUrl, Path]]:
    db = create_database(pg_server, "c360_incr")
    try:
        build_raw_database(db.url)
        yield db, tmp_path_factory.mktemp("dbt_incremental")
    finally:
        drop_database(db)


def test_incremental_equals_full_refresh(incremental_db: tuple[PgUrl, Path]) -> None:
    db, tmp = incremental_db
    t1 = datetime(2024, 3, 11, tzinfo=UTC)
    late_order = {"order_no": "SO8", "cust_no": "C099", "order_date": "2024-03-05", "amount": 800,
                  "currency": "CNY", "status": "open", "modified_time": t1.isoformat()}  # fmt: skip
    land(db.url, "raw_erp.sales_orders", "SO8", late_order, t1)
    dbt_ok(["run", *SELECT], db, tmp)

    def query(sql: str) -> list[tuple]:
        with psycopg.connect(db.url) as conn:
            return conn.execute(sql).fetchall()

    before = {order: xmin for order, xmin in query("select order_id, xmin::text from marts.fct_orders")}
    assert query("select customer_key from marts.fct_orders where order_id = 'SO8'") == [(None,)]

    t2 = datetime(2024, 3, 12, tzinfo=UTC)
    order = {"cust_no": "C003", "order_date": "2024-02-02", "currency": "CNY"}
    land(db.url, "raw_erp.sales_orders", "SO2",
         {**order, "order_no": "SO2", "amount": "3,500", "status": "completed",
          "modified_time": t2.isoformat()}, t2)  # fmt: skip
    land(db.url, "raw_erp.sales_orders", "SO7",
         {**order, "order_no": "SO7", "cust_no": "C001", "order_date": "2024-03-11", "amount": 99,
          "currency": "USD", "status": "open", "modified_time": t2.isoformat()}, t2)  # fmt: skip
    land(db.url, "raw_erp.customer_master", "C099",
         {"cust_no": "C099", "cust_name": "深圳前海微众贸易有限公司", "cust_type": "C",
          "contact_tel": "13511112222", "modified_time": t2.isoformat()}, t2)  # fmt: skip
    land(db.url, "raw_erp.sales_orders", "SO5", {"order_no": "SO5", "_deleted": True}, t2, deleted=True)
    land(db.url, "raw_callcenter.callers", "CC2",
         {"caller_id": "CC2", "name": "赵强", "phone": "13700002222", "company_name": "云帆物流",
          "updated_at": t2.isoformat()}, t2)  # fmt: skip
    dbt_ok(["run", *SELECT], db, tmp)
    incremental = query(ORDERS)
    after = {order: xmin for order, xmin in query("select order_id, xmin::text from marts.fct_orders")}
    dbt_ok(["run", "--full-refresh", *SELECT], db, tmp)
    full = query(ORDERS)

    assert incremental == full
    orders = {row[0]: row for row in full}
    assert sorted(orders) == ["SO1", "SO2", "SO3", "SO4", "SO6", "SO7", "SO8"]  # SO5 deleted
    assert orders["SO8"][1] is not None  # the late customer arrived
    # only what changed was rewritten: SO1 (C001, untouched) kept its row version
    assert after["SO1"] == before["SO1"]
    assert after["SO2"] != before["SO2"] and after["SO8"] != before["SO8"]
