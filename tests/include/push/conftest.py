"""A small warehouse whose marts point at the module's sandbox world, for the sync-back flows.

The marts and staging relations the planners read are created as plain tables with only the
columns the planners use, filled from the sandbox's own records, so a flow runs end to end
against the real sandbox server and the real ERP database in a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest

from include.config import PgUrl
from include.push.engine import ensure_ops
from tests.conftest import create_database, drop_database
from tests.include.conftest import World
from tests.include.sandbox.helpers import app_rows

WAREHOUSE_DDL = """
create schema marts;
create schema staging;
create table marts.dim_customer (
    customer_key text primary key, customer_type text, customer_name text, uscc text, id_card_hash text,
    mobile_e164 text, phone_e164 text, email text, province text, city text, address text,
    source_systems text
);
create table marts.customer_crosswalk (source_system text, source_record_id text, customer_key text);
create table staging.stg_crm__accounts (
    account_id text primary key, source_updated_at timestamptz, mobile_e164 text, phone_e164 text, email text
);
create table staging.stg_crm__opportunities (account_id text, stage text, amount numeric);
create table staging.stg_erp__customer_master (
    customer_id text primary key, source_updated_at timestamptz, mobile_e164 text, phone_e164 text, email text
);
create table staging.stg_oa__customer_archive (
    archive_id text primary key, source_updated_at timestamptz, mobile_e164 text, phone_e164 text, email text
);
create table staging.stg_callcenter__callers (caller_id text, mobile_e164 text, phone_e164 text, email text);
create table staging.stg_callcenter__contact_changes (
    change_id text, caller_id text, changed_field text, new_value text, changed_at timestamptz
);
create table staging.stg_marketing__leads (lead_id text, mobile_e164 text, phone_e164 text, email text);
"""


@dataclass
class Warehouse:
    url: PgUrl
    accounts: list[dict]  # the CRM accounts the marts know, in customer_key order

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url.url)

    def set_golden(self, customer_key: str, **values: str | None) -> None:
        with self.connect() as conn:
            for column, value in values.items():
                conn.execute(
                    f"update marts.dim_customer set {column} = %s where customer_key = %s",
                    (value, customer_key),
                )

    def reread(self, api: httpx.Client) -> None:
        """What the next CRM extract + dbt would do to staging: take the CRM's current updated_at."""
        with self.connect() as conn:
            for row in conn.execute("select account_id from staging.stg_crm__accounts").fetchall():
                record = api.get(f"/crm/v1/accounts/{row[0]}")
                if record.status_code == 200:
                    conn.execute(
                        "update staging.stg_crm__accounts set source_updated_at = %s where account_id = %s",
                        (record.json()["updated_at"], row[0]),
                    )


def customer_key(i: int) -> str:
    return f"C{i:07d}"


@pytest.fixture(scope="module")
def warehouse(pg_server: PgUrl, world: World) -> Iterator[Warehouse]:
    """60 customers, each owning one CRM account, golden phone/email fresh (so a push changes them)."""
    db = create_database(pg_server, "c360_push")
    accounts = app_rows(world.data_dir, "crm_accounts")[:60]
    with psycopg.connect(db.url) as conn:
        conn.execute(WAREHOUSE_DDL)
        for i, account in enumerate(accounts):
            key = customer_key(i)
            conn.execute(
                "insert into marts.dim_customer (customer_key, customer_type, customer_name, "
                "mobile_e164, email, "
                "source_systems) values (%s, 'company', %s, %s, %s, 'crm,erp')",
                (key, account["account_name"], f"+86139{i:08d}", f"golden.{i}@example.com"),
            )
            conn.execute("insert into marts.customer_crosswalk values ('crm', %s, %s)", (account["id"], key))
            conn.execute(
                "insert into staging.stg_crm__accounts values (%s, %s)",
                (account["id"], account["updated_at"]),
            )
        conn.commit()
        ensure_ops(conn)
    yield Warehouse(db, accounts)
    drop_database(db)
