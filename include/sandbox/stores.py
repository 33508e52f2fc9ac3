"""Where the sandbox keeps each system's state.

- CRM, OA and call center: one SQLite file (WAL mode) with one table per entity, served by
  :mod:`include.sandbox.server`.
- ERP: its own PostgreSQL database, schema ``erp``, loaded with ``COPY``.
- Marketing: files in the landing folder (see :mod:`include.sandbox.marketing`).
- Ground truth: CSVs the pipeline never reads.

Column lists come from the source registry, so the sandbox serves exactly the documented contract.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path

import psycopg
import yaml
from psycopg import sql

from include import config
from include.config import PgUrl

CST = timezone(timedelta(hours=8), "CST")


def crm_ts(dt: datetime) -> str:
    """CRM writes UTC with a Z: ``2025-03-04T10:22:31Z``."""
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def oa_ts(dt: datetime) -> str:
    """OA runs on Beijing time: ``2025-03-04T18:22:31+08:00``."""
    return dt.astimezone(CST).isoformat(timespec="seconds")


def cc_ts(dt: datetime) -> str:
    """Call center: UTC with milliseconds: ``2025-03-04T10:22:31.123+00:00``."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class AppTable:
    """One entity of an HTTP system, stored as one SQLite table."""

    system: str
    entity: str
    key: str
    updated_at: str
    fields: tuple[str, ...]
    path: str
    fmt: object  # the system's timestamp formatter (crm_ts / oa_ts / cc_ts)
    numeric: frozenset[str] = frozenset()

    @property
    def table(self) -> str:
        return f"{self.system}_{self.entity}"


@cache
def registry() -> dict:
    with open(config.REGISTRY_DIR / "sources.yaml", encoding="utf-8") as f:
        return {s["name"]: s for s in yaml.safe_load(f)["sources"]}


def entity_spec(system: str, entity: str) -> dict:
    return next(e for e in registry()[system]["entities"] if e["name"] == entity)


_FORMATS = {"crm": crm_ts, "oa": oa_ts, "callcenter": cc_ts}
_NUMERIC = {"amount", "contract_amount"}


@cache
def app_tables() -> dict[str, AppTable]:
    """``{"crm_accounts": AppTable(...), ...}`` for every HTTP entity in the registry."""
    tables = {}
    for name, source in registry().items():
        if source["kind"] != "http":
            continue
        for e in source["entities"]:
            t = AppTable(
                system=name,
                entity=e["name"],
                key=e["key"],
                updated_at=e["updated_at"],
                fields=tuple(e["fields"]),
                path=e["path"],
                fmt=_FORMATS[name],
                numeric=frozenset(_NUMERIC & set(e["fields"])),
            )
            tables[t.table] = t
    return tables


# --- SQLite: CRM, OA, call center -----------------------------------------------------------------


def apps_db_path() -> Path:
    return config.sandbox_dir() / "apps.sqlite"


def connect_apps(path: Path | None = None) -> sqlite3.Connection:
    conn = sqlite3.connect(path or apps_db_path(), timeout=30, check_same_thread=False)
    conn.execute("pragma journal_mode=wal")
    conn.execute("pragma busy_timeout=30000")
    return conn


def reset_apps_db(path: Path | None = None) -> sqlite3.Connection:
    """Delete and recreate the apps database with empty tables; returns a connection tuned for loading."""
    path = path or apps_db_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    conn = connect_apps(path)
    conn.execute("pragma synchronous=off")
    for t in app_tables().values():
        cols = ", ".join(
            f"{f} {'real' if f in t.numeric else 'text'}{' primary key' if f == t.key else ''}"
            for f in t.fields
        )
        conn.execute(f"create table {t.table} ({cols}) without rowid")
    return conn


def index_apps_db(conn: sqlite3.Connection) -> None:
    """Keyset and filter indexes, built once after the bulk load."""
    for t in app_tables().values():
        conn.execute(f"create index if not exists ix_{t.table}_upd on {t.table} ({t.updated_at}, {t.key})")
    conn.execute("create index if not exists ix_crm_contacts_account on crm_contacts (account_id)")
    conn.execute("create index if not exists ix_cc_tickets_caller on callcenter_tickets (caller_id)")
    conn.commit()


def insert_rows(conn: sqlite3.Connection, table: str, rows: list[tuple]) -> None:
    if rows:
        t = app_tables()[table]
        marks = ", ".join("?" * len(t.fields))
        conn.executemany(f"insert into {table} ({', '.join(t.fields)}) values ({marks})", rows)


def row_dict(table: str, row: sqlite3.Row | tuple) -> dict:
    return dict(zip(app_tables()[table].fields, row, strict=True))


# --- PostgreSQL: ERP ------------------------------------------------------------------------------

ERP_DDL = """
create schema erp;
create table erp.customer_master (
    cust_no        text primary key,
    cust_name      text not null,
    cust_type      text not null,
    tax_no         text,
    id_card_no     text,
    contact_person text,
    contact_tel    text,
    contact_email  text,
    reg_address    text,
    province       text,
    city           text,
    credit_limit   numeric(14, 2),
    created_time   timestamptz not null,
    modified_time  timestamptz not null
);
create table erp.sales_orders (
    order_no      text primary key,
    cust_no       text not null,
    order_date    date not null,
    amount        numeric(14, 2) not null,
    currency      char(3) not null,
    status        text not null,
    modified_time timestamptz not null
);
create table erp.invoices (
    invoice_no    text primary key,
    cust_no       text not null,
    order_no      text not null,
    invoice_date  date not null,
    due_date      date not null,
    amount        numeric(14, 2) not null,
    paid_amount   numeric(14, 2) not null default 0,
    paid_date     date,
    status        text not null,
    modified_time timestamptz not null
);
comment on schema erp is 'Sandbox finance ERP (财务ERP)';
"""

ERP_INDEXES = """
alter table erp.sales_orders add foreign key (cust_no) references erp.customer_master;
alter table erp.invoices add foreign key (cust_no) references erp.customer_master;
alter table erp.invoices add foreign key (order_no) references erp.sales_orders;
create index ix_customer_master_modified on erp.customer_master (modified_time);
create index ix_sales_orders_modified on erp.sales_orders (modified_time);
create index ix_sales_orders_cust on erp.sales_orders (cust_no);
create index ix_invoices_modified on erp.invoices (modified_time);
create index ix_invoices_cust on erp.invoices (cust_no);
"""

ERP_TABLES = ("customer_master", "sales_orders", "invoices")


def erp_columns(table: str) -> list[str]:
    return list(entity_spec("erp", table)["fields"])


def ensure_database(url: str) -> None:
    """Create the database named in ``url`` if its server does not have it yet."""
    target = PgUrl.parse(url)
    with psycopg.connect(target.with_dbname("postgres").url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (target.dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(target.dbname)))


def reset_erp(url: str) -> psycopg.Connection:
    """Empty ERP schema on ``url`` (database created if missing); returns an open connection."""
    ensure_database(url)
    conn = psycopg.connect(url)
    conn.execute("drop schema if exists erp cascade")
    conn.execute(ERP_DDL)
    conn.commit()
    return conn


def copy_erp(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = sql.SQL(", ").join(map(sql.Identifier, erp_columns(table)))
    stmt = sql.SQL("copy erp.{} ({}) from stdin").format(sql.Identifier(table), cols)
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)


def finish_erp(conn: psycopg.Connection) -> None:
    conn.execute(ERP_INDEXES)
    conn.execute("analyze erp.customer_master")
    conn.commit()


# --- sandbox state ----------------------------------------------------------------------------------


def state_path() -> Path:
    return config.sandbox_dir() / "state.json"


def read_state() -> dict:
    path = state_path()
    if not path.exists():
        raise RuntimeError(
            f"No sandbox state at {path}: run "
            "`python -m include.sandbox generate --customers 1000 --seed 1` first"
        )
    return json.loads(path.read_text(encoding="utf-8"))


def write_state(state: dict) -> None:
    state_path().parent.mkdir(parents=True, exist_ok=True)
    state_path().write_text(json.dumps(state, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
