"""Personal-information deletion requests (个人信息删除): record, anonymise the warehouse, tombstone.

:func:`request_erasure` records the request, keeps a tombstone per source record of the customer
(``ops.erasure_tombstones``: which records in which systems held them, so the push reaches every
one even after identity resolution can no longer link the anonymised records) and anonymises the
warehouse at once: personal fields in the raw payloads (every version), the golden record, the
golden values with their provenance, and the history of both (snapshots); the steward reports
holding the customer's values (link evidence, conflicts) lose its rows. The ``customer_key``
stays, as a tombstone. The ``erasure`` flow then pushes the deletion to every system; other flows
skip erased customers.
"""

from __future__ import annotations

import uuid

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from include.push.engine import ensure_ops
from include.push.flows import ERASED_NAME

#: Per source entity holding a customer's records: (raw table, how its rows point at the
#: customer's source record, personal fields). ``None`` as the pointer: the record id itself.
PERSONAL_FIELDS: dict[str, list[tuple[str, str | None, list[str]]]] = {
    "crm": [
        ("raw_crm.accounts", None, ["account_name", "id_card_no_sha256", "phone", "email", "address"]),
        ("raw_crm.contacts", "account_id", ["full_name", "mobile", "email"]),
    ],
    "erp": [
        (
            "raw_erp.customer_master",
            None,
            [
                "cust_name",
                "id_card_no_sha256",
                "contact_person",
                "contact_tel",
                "contact_email",
                "reg_address",
            ],
        )
    ],
    "oa": [
        (
            "raw_oa.customer_archive",
            None,
            ["customer_name", "legal_rep", "contact_phone", "contact_email", "address"],
        )
    ],
    "callcenter": [
        ("raw_callcenter.callers", None, ["name", "phone", "alt_phone", "email", "id_card_no_sha256"]),
        ("raw_callcenter.contact_changes", "caller_id", ["old_value", "new_value"]),
    ],
    "marketing": [("raw_marketing.leads", None, ["lead_name", "mobile", "email"])],
}
GOLDEN_PERSONAL = ["id_card_hash", "mobile_e164", "phone_e164", "email", "address"]
#: Golden values one row per customer_key and attribute (survivorship and what the marts show of
#: it): the personal attributes' rows of an erased customer are deleted at once; the next dbt run
#: recomputes the customer from the anonymised records.
GOLDEN_VALUE_TABLES = ["intermediate.int_golden_attributes", "marts.customer_golden_provenance"]
#: The history of those values (type-2, kept for audit): its versions stay, their personal values
#: are anonymised as the golden record's are (the name to ERASED_NAME, the others to null).
GOLDEN_VALUE_HISTORY = "snapshots.snap_customer_golden_provenance"
#: Steward reports holding a customer's values per source (link evidence: the two values compared;
#: conflicts: every value seen): an erased customer's rows go.
VALUE_REPORTS = ["marts.identity_link_evidence", "marts.customer_attribute_conflicts"]
#: The staging tables (dbt, incremental) holding each system's customer records, and their id column:
#: an erased record's row is deleted at once; the next dbt run rebuilds it from the anonymised raw
#: versions, which count as landed at erasure time so the incremental models pick them up.
CUSTOMER_STAGING: dict[str, tuple[str, str]] = {
    "crm": ("staging.stg_crm__accounts", "account_id"),
    "erp": ("staging.stg_erp__customer_master", "customer_id"),
    "oa": ("staging.stg_oa__customer_archive", "archive_id"),
    "callcenter": ("staging.stg_callcenter__callers", "caller_id"),
    "marketing": ("staging.stg_marketing__leads", "lead_id"),
}


def _exists(conn: psycopg.Connection, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def request_erasure(conn: psycopg.Connection, customer_key: str, reason: str) -> dict[str, int | str]:
    """Record the request and anonymise the warehouse; counts of what was anonymised."""
    ensure_ops(conn)
    known = conn.execute(
        "select 1 from marts.dim_customer where customer_key = %s", (customer_key,)
    ).fetchone()
    if not known:
        raise ValueError(f"no customer {customer_key!r} in marts.dim_customer; check the customer_key")
    request_id = f"erase-{uuid.uuid4().hex[:12]}"
    conn.execute(
        "insert into ops.erasure_requests (request_id, customer_key, reason) values (%s, %s, %s)",
        (request_id, customer_key, reason),
    )
    conn.execute(
        "insert into ops.erasure_tombstones (customer_key, source_system, source_record_id) "
        "select customer_key, source_system, source_record_id from marts.customer_crosswalk "
        "where customer_key = %s on conflict do nothing",
        (customer_key,),
    )
    counts: dict[str, int | str] = {"request_id": request_id}
    records = conn.execute(
        "select source_system, array_agg(source_record_id) from ops.erasure_tombstones "
        "where customer_key = %s group by source_system",
        (customer_key,),
    ).fetchall()
    for system, ids in records:
        for relation, pointer, fields in PERSONAL_FIELDS.get(system, []):
            if not _exists(conn, relation):
                continue
            # Nulls, names too: a shared placeholder name would let identity resolution link the
            # anonymised records of different erased people.
            blank = dict.fromkeys(fields)
            schema, table = relation.split(".")
            match = (
                sql.SQL("_record_id = any(%s)")
                if pointer is None
                else sql.SQL("payload ->> {} = any(%s)").format(sql.Literal(pointer))
            )
            cur = conn.execute(
                sql.SQL("update {} set payload = payload || %s, _loaded_at = now() where {}").format(
                    sql.Identifier(schema, table), match
                ),
                (Jsonb(blank), ids),
            )
            counts[relation] = cur.rowcount
        if system in CUSTOMER_STAGING and _exists(conn, CUSTOMER_STAGING[system][0]):
            staging, id_column = CUSTOMER_STAGING[system]
            schema, table = staging.split(".")
            counts[staging] = conn.execute(
                sql.SQL("delete from {} where {} = any(%s)").format(
                    sql.Identifier(schema, table), sql.Identifier(id_column)
                ),
                (ids,),
            ).rowcount
    sets = sql.SQL(", ").join(
        [sql.SQL("customer_name = {}").format(sql.Literal(ERASED_NAME))]
        + [sql.SQL("{} = null").format(sql.Identifier(c)) for c in GOLDEN_PERSONAL]
    )
    for relation in ("marts.dim_customer", "snapshots.snap_dim_customer"):
        if _exists(conn, relation):
            schema, table = relation.split(".")
            counts[relation] = conn.execute(
                sql.SQL("update {} set {} where customer_key = %s").format(
                    sql.Identifier(schema, table), sets
                ),
                (customer_key,),
            ).rowcount
    counts.update(_erase_golden_values(conn, customer_key))
    conn.execute(
        "update ops.erasure_requests set warehouse_erased_at = now() where request_id = %s", (request_id,)
    )
    conn.commit()
    return counts


def _erase_golden_values(conn: psycopg.Connection, customer_key: str) -> dict[str, int]:
    """Personal golden values beyond the golden record: current values, their history, the reports."""
    personal = ["customer_name", *GOLDEN_PERSONAL]
    counts: dict[str, int] = {}
    for relation in GOLDEN_VALUE_TABLES:
        if _exists(conn, relation):
            counts[relation] = conn.execute(
                sql.SQL("delete from {} where customer_key = %s and attribute = any(%s)").format(
                    sql.Identifier(*relation.split("."))
                ),
                (customer_key, personal),
            ).rowcount
    if _exists(conn, GOLDEN_VALUE_HISTORY):
        counts[GOLDEN_VALUE_HISTORY] = conn.execute(
            sql.SQL(
                "update {} set value = case when attribute = 'customer_name' then %s end "
                "where customer_key = %s and attribute = any(%s)"
            ).format(sql.Identifier(*GOLDEN_VALUE_HISTORY.split("."))),
            (ERASED_NAME, customer_key, personal),
        ).rowcount
    for relation in VALUE_REPORTS:
        if _exists(conn, relation):
            counts[relation] = conn.execute(
                sql.SQL("delete from {} where customer_key = %s").format(
                    sql.Identifier(*relation.split("."))
                ),
                (customer_key,),
            ).rowcount
    return counts
