"""Access control on the built fixture warehouse: the role test matrix, masking in the bi and
analyst views, the access audit, and grants that survive dbt rebuilding as the transformer role.

The roles get a per-run prefix (C360_ROLE_PREFIX's job in production): roles belong to the server,
which other databases and test runs share.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import yaml
from psycopg import sql

from include.access.masked_models import BI_MARTS, load_marts
from include.access.matrix import ALLOWED, CHECKS, REFUSED, Check, run_check
from include.access.roles import load_access
from include.access.setup import setup_access
from include.config import DBT_PROJECT_DIR, PgUrl
from include.extract.landing import OPS_DDL, ensure_raw_table
from include.push.engine import ensure_ops
from tests.dbt.conftest import DBT_EXECUTABLE, FIXTURE_VARS, DbtWarehouse, dbt_env, run_dbt

TRANSFORMER_PASSWORD_ENV = load_access().roles["transformer"].password_env


@dataclass(frozen=True)
class AccessWarehouse:
    wh: DbtWarehouse
    prefix: str
    transformer_password: str

    @property
    def url(self) -> str:
        return self.wh.db.url

    def role(self, name: str) -> str:
        return self.prefix + name

    def as_role(self, role: str, statement: str, params: tuple = ()) -> list[tuple]:
        """Run one statement as ``role`` (SET ROLE drops the admin's rights) and commit."""
        with psycopg.connect(self.url) as conn:
            conn.execute(sql.SQL("set role {}").format(sql.Identifier(self.role(role))))
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []


@pytest.fixture(scope="module")
def access(dbt_warehouse: DbtWarehouse) -> Iterator[AccessWarehouse]:
    prefix = f"c360t{uuid.uuid4().hex[:6]}_"
    password = uuid.uuid4().hex
    with psycopg.connect(dbt_warehouse.db.url) as conn:
        conn.execute(OPS_DDL)  # what the extract and push code create on their first run
        ensure_ops(conn)
        conn.commit()
    mp = pytest.MonkeyPatch()
    mp.setenv(TRANSFORMER_PASSWORD_ENV, password)
    try:
        setup_access(dbt_warehouse.db.url, prefix=prefix)
        yield AccessWarehouse(dbt_warehouse, prefix, password)
    finally:
        mp.undo()
        roles = [prefix + name for name in load_access().roles]
        with psycopg.connect(dbt_warehouse.db.url, autocommit=True) as conn:
            admin = conn.execute("select current_user").fetchone()[0]
            for role in roles:
                conn.execute(
                    sql.SQL("reassign owned by {} to {}").format(sql.Identifier(role), sql.Identifier(admin))
                )
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            for role in reversed(roles):
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


# --- the matrix -------------------------------------------------------------------------------


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.id)
def test_role_matrix(access: AccessWarehouse, check: Check) -> None:
    with psycopg.connect(access.url) as conn:
        assert run_check(conn, check, access.prefix) == check.expected


def test_matrix_covers_every_role_both_ways() -> None:
    for role in load_access().roles:
        outcomes = {c.expected for c in CHECKS if c.role == role}
        assert outcomes == {ALLOWED, REFUSED}, role


def test_matrix_writes_leave_nothing(access: AccessWarehouse) -> None:
    assert access.wh.query(
        "select count(*) from steward.identity_overrides where reason = 'access matrix check'"
    ) == [(0,)]
    assert access.wh.query("select to_regclass('marts.probe'), to_regclass('raw_crm.probe')") == [
        (None, None)
    ]


def test_components_keep_their_own_tables_as_their_role(access: AccessWarehouse) -> None:
    """The extract's and the push's own DDL (create if not exists, add column, create index) runs
    as loader and pusher, not only single statements."""
    with psycopg.connect(access.url) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(access.role("loader"))))
        ensure_raw_table(conn, "raw_crm", "accounts")
        ensure_raw_table(conn, "raw_crm", "new_entity")
        conn.commit()
    with psycopg.connect(access.url) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(access.role("pusher"))))
        ensure_ops(conn)
    owners = access.wh.query(
        "select c.oid::regclass::text, pg_get_userbyid(c.relowner) from pg_class c "
        "where c.oid in ('raw_crm.new_entity'::regclass, 'ops.sync_outbox'::regclass) order by 1"
    )
    assert owners == [
        ("ops.sync_outbox", access.role("pusher")),
        ("raw_crm.new_entity", access.role("loader")),
    ]
    # the transformer reads a raw table the loader made after the setup (default privileges)
    with psycopg.connect(access.url) as conn:
        check = Check("transformer", "raw_crm.new_entity", "select * from raw_crm.new_entity", ALLOWED)
        assert run_check(conn, check, access.prefix) == ALLOWED


# --- masking ----------------------------------------------------------------------------------


def _columns(wh: DbtWarehouse, schema: str, table: str) -> list[str]:
    rows = wh.query(
        "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
        "order by ordinal_position",
        (schema, table),
    )
    return [r[0] for r in rows]


@pytest.mark.parametrize("mart", BI_MARTS)
def test_bi_view_has_the_marts_columns_less_identity_numbers(access: AccessWarehouse, mart: str) -> None:
    marts = load_marts()
    hidden = {
        c["name"]
        for c in marts[mart]["columns"]
        if c["config"]["meta"]["pii"] == "identity" and c["config"]["meta"].get("pii_kind") != "customer_name"
    }
    expected = [c for c in _columns(access.wh, "marts", mart) if c not in hidden]
    assert expected, mart
    assert _columns(access.wh, "bi", mart) == expected


def test_identity_numbers_are_not_exposed(access: AccessWarehouse) -> None:
    exposed = access.wh.query(
        "select table_schema, table_name, column_name from information_schema.columns "
        "where table_schema in ('bi', 'analyst') and column_name in ('uscc', 'id_card_hash')"
    )
    assert exposed == []


def test_bi_reader_sees_masked_contacts_only(access: AccessWarehouse) -> None:
    rows = access.as_role("bi_reader", "select mobile_e164, phone_e164, email, address from bi.dim_customer")
    mobiles = [r[0] for r in rows if r[0]]
    emails = [r[2] for r in rows if r[2]]
    assert mobiles and emails
    assert all(re.fullmatch(r"1\d{2}\*{4}\d{4}", m) for m in mobiles), mobiles
    assert all(re.fullmatch(r"[^@]?\*\*\*@.+", e) for e in emails), emails
    assert all(r[1] is None or "****" in r[1] for r in rows)
    assert all(r[3] is None or r[3].endswith("****") for r in rows)


def test_masked_values_are_the_marts_values_masked(access: AccessWarehouse) -> None:
    mismatches = access.wh.query(
        """
        select m.customer_key from marts.dim_customer m join bi.dim_customer b using (customer_key)
        where b.mobile_e164 is distinct from privacy.mask_phone(m.mobile_e164)
           or b.email is distinct from privacy.mask_email(m.email)
           or b.customer_name is distinct from
              case when m.customer_type = 'company' then m.customer_name
                   else privacy.mask_name(m.customer_name) end
        """
    )
    assert mismatches == []
    counts = access.wh.query(
        "select (select count(*) from marts.dim_customer), (select count(*) from bi.dim_customer)"
    )
    assert counts[0][0] == counts[0][1] > 0


def test_person_names_are_masked_company_names_kept(access: AccessWarehouse) -> None:
    rows = access.as_role("analyst", "select customer_type, customer_name from bi.customer_360")
    people = [name for kind, name in rows if kind == "person"]
    companies = [name for kind, name in rows if kind == "company"]
    assert people and companies
    assert all("*" in name for name in people), people
    assert not any(name.endswith("*") and len(name) > 3 for name in companies)


def test_analyst_layer_masks_identity_evidence(access: AccessWarehouse) -> None:
    rows = access.as_role("analyst", "select value_a, value_b from analyst.identity_link_evidence")
    assert rows
    assert all(v is None or v.endswith("***") for row in rows for v in row)


def test_consent_flag_is_visible_in_bi(access: AccessWarehouse) -> None:
    rows = access.as_role(
        "bi_reader", "select count(*) filter (where has_marketing_opt_in) from bi.dim_customer"
    )
    assert rows[0][0] > 0
    assert "has_marketing_opt_in" in _columns(access.wh, "bi", "customer_360")


def test_column_comments_carry_the_chinese_label(access: AccessWarehouse) -> None:
    rows = access.wh.query(
        "select col_description('bi.dim_customer'::regclass, ordinal_position::int) "
        "from information_schema.columns where table_schema = 'bi' and table_name = 'dim_customer' "
        "and column_name = 'mobile_e164'"
    )
    assert rows[0][0].startswith("手机号：Mobile number")
    assert "masked" in rows[0][0].lower()
    table = access.wh.query("select obj_description('bi.dim_customer'::regclass, 'pg_class')")[0][0]
    assert table.startswith("客户维度（黄金记录）（BI脱敏）：Masked view of marts.dim_customer")


def test_change_history_is_masked(access: AccessWarehouse) -> None:
    rows = access.as_role(
        "bi_reader",
        "select attribute, new_value, source_system from bi.customer_change_history "
        "where change_type = 'created'",
    )
    assert rows
    phones = [v for a, v, _ in rows if a == "mobile_e164"]
    assert phones and all(re.fullmatch(r"1\d{2}\*{4}\d{4}", p) for p in phones)
    assert all(v is None for a, v, _ in rows if a in ("uscc", "id_card_hash"))
    assert any(s is not None for a, _, s in rows if a == "email")


def test_change_history_reports_changes_and_closures(access: AccessWarehouse) -> None:
    """A new golden version with another mobile, and a key closed without a successor, as the
    snapshot would record them (rolled back afterwards)."""
    with psycopg.connect(access.url) as conn:
        changed, old_mobile = conn.execute(
            "select customer_key, mobile_e164 from snapshots.snap_dim_customer "
            "where mobile_e164 is not null and dbt_valid_to is null order by customer_key limit 1"
        ).fetchone()
        closed = conn.execute(
            "select customer_key from snapshots.snap_dim_customer "
            "where dbt_valid_to is null and customer_key <> %s order by customer_key limit 1",
            (changed,),
        ).fetchone()[0]
        conn.execute(
            "create temp table next_version as select * from snapshots.snap_dim_customer "
            "where customer_key = %s and dbt_valid_to is null",
            (changed,),
        )
        conn.execute(
            "update next_version set mobile_e164 = '+8613900001111', dbt_scd_id = md5(dbt_scd_id), "
            "dbt_valid_from = dbt_valid_from + interval '1 day'"
        )
        conn.execute(
            "update snapshots.snap_dim_customer set dbt_valid_to = dbt_valid_from + interval '1 day' "
            "where customer_key = any(%s) and dbt_valid_to is null",
            ([changed, closed],),
        )
        conn.execute("insert into snapshots.snap_dim_customer select * from next_version")
        rows = conn.execute(
            "select customer_key, version_number, change_type, attribute, old_value, new_value "
            "from bi.customer_change_history where customer_key = any(%s) and change_type <> 'created' "
            "order by customer_key",
            ([changed, closed],),
        ).fetchall()
        masked_old = conn.execute("select privacy.mask_phone(%s)", (old_mobile,)).fetchone()[0]
        conn.rollback()
    assert sorted(rows) == sorted(
        [
            (changed, 2, "changed", "mobile_e164", masked_old, "139****1111"),
            (closed, 1, "closed", None, None, None),
        ]
    )


# --- audit --------------------------------------------------------------------------------------


def test_override_changes_are_audited(access: AccessWarehouse) -> None:
    marker = f"audit-{uuid.uuid4().hex[:8]}"
    access.as_role(
        "steward",
        "insert into steward.identity_overrides (record_id_a, record_id_b, decision, reason) "
        "values ('crm:audit-a', 'erp:audit-b', 'same', %s)",
        (marker,),
    )
    access.as_role(
        "steward", "update steward.identity_overrides set decision = 'never' where reason = %s", (marker,)
    )
    access.as_role("steward", "delete from steward.identity_overrides where reason = %s", (marker,))
    rows = access.wh.query(
        """
        select action, session_user_name, current_user_name, old_row->>'decision', new_row->>'decision'
        from ops.access_audit
        where coalesce(new_row, old_row)->>'reason' = %s order by audit_id
        """,
        (marker,),
    )
    admin = access.wh.db.user
    steward = access.role("steward")
    assert rows == [
        ("INSERT", admin, steward, None, "same"),
        ("UPDATE", admin, steward, "same", "never"),
        ("DELETE", admin, steward, "never", None),
    ]


def test_pii_reads_are_logged_once_per_statement(access: AccessWarehouse) -> None:
    before = access.wh.query("select coalesce(max(audit_id), 0) from ops.access_audit")[0][0]
    n = access.as_role("steward", "select count(*) from pii.dim_customer")[0][0]
    assert n > 1
    access.as_role("steward", "select * from pii.dim_customer where customer_key = 'no such key'")
    access.as_role("steward", "select mobile_e164 from pii.customer_360 limit 3")
    rows = access.wh.query(
        "select action, relation, current_user_name, statement from ops.access_audit where audit_id > %s "
        "order by audit_id",
        (before,),
    )
    steward = access.role("steward")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("SELECT", "pii.dim_customer", steward),
        ("SELECT", "pii.dim_customer", steward),
        ("SELECT", "pii.customer_360", steward),
    ]
    assert "no such key" in rows[1][3]


def test_steward_reads_full_pii_through_the_view(access: AccessWarehouse) -> None:
    rows = access.as_role("steward", "select mobile_e164 from pii.dim_customer where mobile_e164 is not null")
    assert rows and all(re.fullmatch(r"\+861\d{10}", r[0]) for r in rows)


# --- grants survive dbt rebuilding as the transformer -----------------------------------------


def test_grants_survive_a_rebuild_as_transformer(access: AccessWarehouse, tmp_path: Path) -> None:
    db = access.wh.db
    as_transformer = PgUrl(
        db.host, db.port, access.role("transformer"), access.transformer_password, db.dbname
    )
    oid_before = access.wh.query("select 'bi.dim_customer'::regclass::oid")[0][0]
    run = run_dbt(
        ["run", "-s", "dim_customer", "bi_dim_customer", "pii_dim_customer", "--vars", FIXTURE_VARS],
        as_transformer,
        tmp_path,
    )
    assert run.returncode == 0, run.stdout[-4000:]
    assert access.wh.query("select 'bi.dim_customer'::regclass::oid")[0][0] != oid_before  # really rebuilt
    owner = access.wh.query(
        "select pg_get_userbyid(relowner) from pg_class where oid = 'marts.dim_customer'::regclass"
    )
    assert owner == [(access.role("transformer"),)]
    with psycopg.connect(access.url) as conn:
        for check in (
            Check("bi_reader", "bi.dim_customer", "select * from bi.dim_customer limit 1", ALLOWED),
            Check("pusher", "marts.dim_customer", "select * from marts.dim_customer limit 1", ALLOWED),
            Check("steward", "pii.dim_customer", "select * from pii.dim_customer limit 1", ALLOWED),
            Check("analyst", "marts.dim_customer", "select * from marts.dim_customer limit 1", REFUSED),
        ):
            assert run_check(conn, check, access.prefix) == check.expected, check.id


# --- a contact column without a masking rule fails the build ------------------------------------


def test_contact_column_without_masking_rule_fails_the_build(access: AccessWarehouse, tmp_path: Path) -> None:
    project = tmp_path / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    models = project / "models" / "marts" / "_marts__models.yml"
    doc = yaml.safe_load(models.read_text(encoding="utf-8"))
    dim = next(m for m in doc["models"] if m["name"] == "dim_customer")
    email = next(c for c in dim["columns"] if c["name"] == "email")
    del email["config"]["meta"]["pii_kind"]
    models.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    result = subprocess.run(
        [
            str(DBT_EXECUTABLE),
            "compile",
            "-s",
            "bi_dim_customer",
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--vars",
            FIXTURE_VARS,
        ],
        env=dbt_env(access.wh.db),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert "dim_customer.email is personal data (meta.pii: contact) without a masking rule" in result.stdout
