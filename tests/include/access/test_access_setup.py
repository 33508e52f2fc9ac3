"""The role registry, the access setup on a fresh database, the masking functions, and the
generated masked models (include/access)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from include.access import masked_models
from include.access.matrix import CHECKS
from include.access.roles import AccessRegistry, load_access
from include.access.setup import macro_sql, setup_access
from include.config import PgUrl, component_conn_id
from include.registry import load_sources
from tests.conftest import create_database, drop_database


def test_registry_declares_the_six_roles() -> None:
    assert set(load_access().roles) == {"loader", "transformer", "pusher", "bi_reader", "analyst", "steward"}


def test_raw_schemas_follow_the_source_registry() -> None:
    raw = [s.raw_schema for s in load_sources()]
    assert load_access().roles["loader"].owned_schemas == raw
    assert load_access().roles["transformer"].grants[0].schemas == raw


def test_unknown_parent_role_is_refused() -> None:
    with pytest.raises(ValueError, match="member_of names roles that are not declared"):
        AccessRegistry.model_validate(
            {"roles": {"a": {"description": "x", "password_env": "A_PW", "member_of": ["nobody"]}}}
        )


def test_only_bi_and_pii_views_reach_bi_reader_and_steward() -> None:
    roles = load_access().roles
    assert [(g.schemas, g.privileges) for g in roles["bi_reader"].grants] == [
        (["bi"], ["select"]),
        (["privacy"], []),
    ]
    assert roles["bi_reader"].database == ["connect"]
    assert "pii" not in [s for g in roles["analyst"].grants for s in g.schemas]


def test_matrix_names_declared_roles_only() -> None:
    assert {c.role for c in CHECKS} == set(load_access().roles)


def test_component_connection_defaults_to_the_warehouse(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("C360_LOADER_CONN_ID", raising=False)
    assert component_conn_id("loader") == "c360_warehouse"
    monkeypatch.setenv("C360_LOADER_CONN_ID", "c360_warehouse_loader")
    assert component_conn_id("loader") == "c360_warehouse_loader"
    with pytest.raises(ValueError, match="unknown component"):
        component_conn_id("bi")


# --- generated models ---------------------------------------------------------------------------


def test_generated_masked_models_are_up_to_date() -> None:
    assert masked_models.stale_files() == [], "run `python -m include.access.masked_models`"


def test_every_mart_has_exactly_one_masked_view() -> None:
    files = masked_models.rendered_files()
    layers = {
        p.stem.split("_", 1)[1]: p.parent.name for p in files if p.suffix == ".sql" and p.parent.name != "pii"
    }
    assert sorted(layers) == sorted(masked_models.load_marts())
    assert {name for name, layer in layers.items() if layer == "bi"} == set(masked_models.BI_MARTS)


def test_contact_column_without_kind_is_refused() -> None:
    mart = {
        "name": "m",
        "description": "One row per x.",
        "columns": [
            {
                "name": "wechat_id",
                "description": "d",
                "config": {"meta": {"label_zh": "微信", "pii": "contact"}},
            }
        ],
    }
    with pytest.raises(ValueError, match="m.wechat_id is meta.pii contact without a meta.pii_kind"):
        masked_models.masked_column_docs(mart)


def test_identity_columns_are_left_out_of_the_docs() -> None:
    docs = masked_models.masked_column_docs(masked_models.load_marts()["dim_customer"])
    names = [c["name"] for c in docs]
    assert "uscc" not in names and "id_card_hash" not in names
    assert "customer_name" in names and "mobile_e164" in names


# --- masking functions --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def masking_db(pg_server: PgUrl) -> Iterator[str]:
    db = create_database(pg_server, "c360_mask")
    try:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(macro_sql("create_masking_functions"))
        yield db.url
    finally:
        drop_database(db)


@pytest.mark.parametrize(
    ("function", "value", "expected"),
    [
        ("mask_phone", "+8613812345678", "138****5678"),
        ("mask_phone", "+86 138-1234-5678", "138****5678"),
        ("mask_phone", "0086 13812345678", "138****5678"),
        ("mask_phone", "+8610 6552 9988", "010****9988"),
        ("mask_phone", "+442071234567", "+442****4567"),
        ("mask_phone", "10086", "****86"),
        ("mask_phone", "12", "****"),
        ("mask_phone", None, None),
        ("mask_email", "li.si@corp.cn", "l***@corp.cn"),
        ("mask_email", "@corp.cn", "***@corp.cn"),
        ("mask_email", "王五@公司.中国", "王***@公司.中国"),
        ("mask_email", "broken", "***"),
        ("mask_email", None, None),
        ("mask_name", "王五", "王*"),
        ("mask_name", "司马相如", "司**如"),
        ("mask_name", "Ng", "N*"),
        ("mask_name", "王", "*"),
        ("mask_name", None, None),
        ("mask_address", "浙江省杭州市西湖区文三路90号", "浙江省杭州市西湖区****"),
        ("mask_address", "长安街1号", "****"),
        ("mask_address", None, None),
    ],
)
def test_masking_function(masking_db: str, function: str, value: str | None, expected: str | None) -> None:
    with psycopg.connect(masking_db) as conn:
        query = sql.SQL("select privacy.{}(%s)").format(sql.Identifier(function))
        assert conn.execute(query, (value,)).fetchone()[0] == expected


def test_customer_name_masks_persons_only(masking_db: str) -> None:
    with psycopg.connect(masking_db) as conn:
        rows = conn.execute(
            "select privacy.mask_customer_name('杭州云帆科技有限公司', 'company'), "
            "privacy.mask_customer_name('赵六一', 'person'), privacy.mask_customer_name('赵六一', null)"
        ).fetchone()
    assert rows == ("杭州云帆科技有限公司", "赵*一", "赵*一")


def scram_sha256(password: str, salt: bytes, iterations: int) -> str:
    """Reference SCRAM-SHA-256 verifier (RFC 5802 / 7677), to recognise a password's verifier."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    parts = [base64.b64encode(x).decode() for x in (salt, hashlib.sha256(client_key).digest(), server_key)]
    return f"SCRAM-SHA-256${iterations}:{parts[0]}${parts[1]}:{parts[2]}"


def _recompute(verifier: str, password: str) -> str:
    iterations, salt = verifier.split("$")[1].split(":")
    return scram_sha256(password, base64.b64decode(salt), int(iterations))


def test_reference_verifier_matches_libpq(pg_server: PgUrl) -> None:
    with psycopg.connect(pg_server.url) as conn:
        verifier = conn.pgconn.encrypt_password(b"pencil", b"someone", b"scram-sha-256").decode()
    assert _recompute(verifier, "pencil") == verifier


# --- setup on a fresh database ------------------------------------------------------------------


def test_setup_is_idempotent_and_logs_in_only_with_a_password(
    fresh_db: PgUrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"c360t{uuid.uuid4().hex[:6]}_"
    registry = load_access()
    monkeypatch.setenv(registry.roles["bi_reader"].password_env, "not-a-real-secret")
    monkeypatch.delenv(registry.roles["analyst"].password_env, raising=False)
    roles = [prefix + name for name in registry.roles]
    try:
        first = setup_access(fresh_db.url, prefix=prefix)
        second = setup_access(fresh_db.url, prefix=prefix)
        assert sorted(first.created) == sorted(roles)
        assert second.created == []
        with psycopg.connect(fresh_db.url) as conn:
            login = dict(
                conn.execute(
                    "select rolname, rolcanlogin from pg_roles where rolname = any(%s)", (roles,)
                ).fetchall()
            )
            assert login[prefix + "bi_reader"] is True
            assert login[prefix + "analyst"] is False
            # the stored verifier is the password's (recomputed with its own salt), the password never sent
            stored = conn.execute(
                "select rolpassword from pg_authid where rolname = %s", (prefix + "bi_reader",)
            )
            verifier = stored.fetchone()[0]
            assert _recompute(verifier, "not-a-real-secret") == verifier
            member = conn.execute(
                "select pg_has_role(%s, %s, 'member')", (prefix + "steward", prefix + "bi_reader")
            ).fetchone()[0]
            assert member is True
            owner = conn.execute(
                "select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'bi'"
            ).fetchone()
            assert owner == (prefix + "transformer",)
            stored = conn.execute(
                "select privileges from ops.access_grants where role_name = %s and schema_name = 'marts' "
                "and table_name = 'dim_customer'",
                (prefix + "pusher",),
            ).fetchall()
            assert stored == [("select",)]
            assert conn.execute(
                "select to_regprocedure('ops.log_pii_read(text, text)') is not null"
            ).fetchone()[0]
    finally:
        with psycopg.connect(fresh_db.url, autocommit=True) as conn:
            for role in roles:
                conn.execute(sql.SQL("reassign owned by {} to current_user").format(sql.Identifier(role)))
                conn.execute(sql.SQL("drop owned by {}").format(sql.Identifier(role)))
            for role in reversed(roles):
                conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def test_macro_sql_is_plain_sql() -> None:
    body = macro_sql("create_access_audit")
    assert "create table ops.access_audit" in body
    assert "{{" not in body and "{#" not in body
    with pytest.raises(ValueError, match="no macro"):
        macro_sql("no_such_macro")


def test_a_role_password_gives_its_component_a_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from include.cli import component_connections

    for role in load_access().roles.values():
        monkeypatch.delenv(role.password_env, raising=False)
    monkeypatch.setenv("C360_ROLE_PREFIX", "wh1_")
    monkeypatch.setenv(load_access().roles["pusher"].password_env, "s3cret")
    env = component_connections("postgresql://postgres@127.0.0.1:5432/c360")
    assert set(env) == {"AIRFLOW_CONN_C360_WAREHOUSE_PUSHER", "C360_PUSHER_CONN_ID"}
    assert env["C360_PUSHER_CONN_ID"] == "c360_warehouse_pusher"
    conn = json.loads(env["AIRFLOW_CONN_C360_WAREHOUSE_PUSHER"])
    assert (conn["login"], conn["password"], conn["schema"]) == ("wh1_pusher", "s3cret", "c360")
