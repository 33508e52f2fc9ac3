"""The role test matrix: what each role must and must not be able to do, tried for real.

Each check runs as its role (``SET LOCAL ROLE`` from the admin connection, which drops the admin's
own rights) inside a transaction that is rolled back, so writes leave nothing behind. A check is
*allowed* when the statement runs and *refused* when PostgreSQL answers "permission denied"; any
other error is a broken check and is reported as such, never counted either way.

    python -m include.access matrix      # print the matrix with what the warehouse answered
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import errors, sql

from include.access.roles import role_prefix

ALLOWED, REFUSED = "allowed", "refused"


@dataclass(frozen=True)
class Check:
    role: str
    action: str
    statement: str
    expected: str  # ALLOWED or REFUSED

    @property
    def id(self) -> str:
        return f"{self.role}: {self.action}"


def _read(table: str) -> str:
    return f"select * from {table} limit 1"


def _insert_nothing(table: str) -> str:
    """INSERT privilege is checked when the statement starts, whatever it inserts: no rows here
    (identity columns copied as they are). Every role expected to write here also reads the table."""
    return f"insert into {table} overriding system value select * from {table} where false"


#: role x action x expected. Tables exist once extract, dbt and the push engine have run once.
CHECKS: tuple[Check, ...] = (
    # bi_reader: the bi views, nothing else
    Check("bi_reader", "select bi.customer_360", _read("bi.customer_360"), ALLOWED),
    Check("bi_reader", "select bi.customer_change_history", _read("bi.customer_change_history"), ALLOWED),
    Check("bi_reader", "select bi.fct_orders", _read("bi.fct_orders"), ALLOWED),
    Check("bi_reader", "select marts.dim_customer", _read("marts.dim_customer"), REFUSED),
    Check("bi_reader", "select raw_crm.accounts", _read("raw_crm.accounts"), REFUSED),
    Check("bi_reader", "select staging.stg_crm__accounts", _read("staging.stg_crm__accounts"), REFUSED),
    Check(
        "bi_reader", "select analyst.identity_link_evidence", _read("analyst.identity_link_evidence"), REFUSED
    ),
    Check("bi_reader", "select pii.dim_customer", _read("pii.dim_customer"), REFUSED),
    Check(
        "bi_reader", "insert into bi.customer_crosswalk", _insert_nothing("bi.customer_crosswalk"), REFUSED
    ),
    Check("bi_reader", "create table in bi", "create table bi.probe (x int)", REFUSED),
    # analyst: masked views only
    Check("analyst", "select bi.dim_customer (masked)", _read("bi.dim_customer"), ALLOWED),
    Check(
        "analyst", "select analyst.identity_link_evidence", _read("analyst.identity_link_evidence"), ALLOWED
    ),
    Check(
        "analyst",
        "select marts.dim_customer.mobile_e164",
        "select mobile_e164 from marts.dim_customer",
        REFUSED,
    ),
    Check("analyst", "select pii.dim_customer", _read("pii.dim_customer"), REFUSED),
    Check("analyst", "select raw_crm.contacts", _read("raw_crm.contacts"), REFUSED),
    Check("analyst", "select steward.identity_overrides", _read("steward.identity_overrides"), REFUSED),
    # loader: raw and its ops tables
    Check("loader", "insert into raw_crm.accounts", _insert_nothing("raw_crm.accounts"), ALLOWED),
    Check("loader", "create table in raw_crm", "create table raw_crm.probe (x int)", ALLOWED),
    Check("loader", "insert into ops.extract_runs", _insert_nothing("ops.extract_runs"), ALLOWED),
    Check(
        "loader",
        "alter raw_crm.accounts (extract's table upkeep)",
        "alter table raw_crm.accounts add column if not exists _deleted boolean not null default false",
        ALLOWED,
    ),
    Check("loader", "select marts.dim_customer", _read("marts.dim_customer"), REFUSED),
    Check("loader", "select bi.customer_360", _read("bi.customer_360"), REFUSED),
    Check("loader", "insert into ops.sync_outbox", _insert_nothing("ops.sync_outbox"), REFUSED),
    Check(
        "loader",
        "update steward.identity_overrides",
        "update steward.identity_overrides set reason = reason",
        REFUSED,
    ),
    # transformer: reads raw, builds the dbt schemas
    Check("transformer", "select raw_crm.accounts", _read("raw_crm.accounts"), ALLOWED),
    Check("transformer", "create table in marts", "create table marts.probe (x int)", ALLOWED),
    Check("transformer", "select steward.identity_overrides", _read("steward.identity_overrides"), ALLOWED),
    Check(
        "transformer",
        "insert into steward.identity_overrides",
        _insert_nothing("steward.identity_overrides"),
        REFUSED,
    ),
    Check("transformer", "select ops.access_audit", _read("ops.access_audit"), REFUSED),
    Check("transformer", "insert into ops.sync_outbox", _insert_nothing("ops.sync_outbox"), REFUSED),
    Check("transformer", "insert into raw_crm.accounts", _insert_nothing("raw_crm.accounts"), REFUSED),
    # pusher: the marts it pushes, the sync tables
    Check("pusher", "select marts.dim_customer", _read("marts.dim_customer"), ALLOWED),
    Check("pusher", "select marts.customer_crosswalk", _read("marts.customer_crosswalk"), ALLOWED),
    Check("pusher", "select staging.stg_crm__accounts", _read("staging.stg_crm__accounts"), ALLOWED),
    Check("pusher", "insert into ops.sync_outbox", _insert_nothing("ops.sync_outbox"), ALLOWED),
    Check(
        "pusher",
        "create index on ops.sync_outbox (push's table upkeep)",
        "create index if not exists sync_outbox_open_ix on ops.sync_outbox (flow, target, record_key)",
        ALLOWED,
    ),
    Check("pusher", "drop table ops.extract_runs", "drop table ops.extract_runs", REFUSED),
    Check("pusher", "select marts.fct_orders", _read("marts.fct_orders"), REFUSED),
    Check("pusher", "select raw_crm.accounts", _read("raw_crm.accounts"), REFUSED),
    Check(
        "pusher",
        "update steward.identity_overrides",
        "update steward.identity_overrides set reason = reason",
        REFUSED,
    ),
    Check("pusher", "select ops.access_audit", _read("ops.access_audit"), REFUSED),
    # steward: overrides read/write, full PII only through the audited pii views
    Check(
        "steward",
        "insert into steward.identity_overrides",
        "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
        "values ('crm:matrix-a', 'erp:matrix-b', 'never', 'access matrix check')",
        ALLOWED,
    ),
    Check("steward", "select pii.dim_customer (full PII, audited)", _read("pii.dim_customer"), ALLOWED),
    Check("steward", "select bi.customer_360 (masked)", _read("bi.customer_360"), ALLOWED),
    Check("steward", "select marts.dim_customer (unaudited)", _read("marts.dim_customer"), REFUSED),
    Check("steward", "select ops.access_audit", _read("ops.access_audit"), REFUSED),
    Check("steward", "delete from ops.access_audit", "delete from ops.access_audit", REFUSED),
    Check("steward", "select raw_crm.contacts", _read("raw_crm.contacts"), REFUSED),
)


class BrokenCheck(RuntimeError):
    """A check failed for another reason than privileges (a missing table, a typo)."""


def run_check(conn: psycopg.Connection, check: Check, prefix: str | None = None) -> str:
    """ALLOWED or REFUSED, as the warehouse answers for ``check.role``; always rolled back."""
    role = (role_prefix() if prefix is None else prefix) + check.role
    conn.rollback()
    try:
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
        conn.execute(check.statement)
        return ALLOWED
    except errors.InsufficientPrivilege:
        return REFUSED
    except psycopg.Error as exc:
        raise BrokenCheck(f"{check.id}: {type(exc).__name__}: {exc}".strip()) from exc
    finally:
        conn.rollback()


def run_matrix(url: str, prefix: str | None = None) -> list[tuple[Check, str]]:
    results = []
    with psycopg.connect(url) as conn:
        for check in CHECKS:
            try:
                results.append((check, run_check(conn, check, prefix)))
            except BrokenCheck as exc:
                results.append((check, f"error: {exc.__cause__}"))
    return results


def format_matrix(results: list[tuple[Check, str]]) -> str:
    width = max(len(c.action) for c, _ in results)
    lines = [f"{'role':<12} {'action':<{width}}  {'expected':<8}  {'actual':<8}  ok", "-" * (width + 40)]
    for check, actual in results:
        ok = "ok" if actual == check.expected else "FAIL"
        lines.append(f"{check.role:<12} {check.action:<{width}}  {check.expected:<8}  {actual[:60]:<8}  {ok}")
    return "\n".join(lines)
