"""Create the project's database roles and apply their grants (include/registry/access.yaml).

Run as the warehouse's admin (the superuser of the demo, or the database owner): idempotent, one
transaction. Every identifier goes through ``psycopg.sql``; passwords come from the roles'
environment variables only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from include.access.roles import AccessRegistry, Grant, Role, load_access, role_prefix
from include.config import DBT_PROJECT_DIR

#: Where setup stores the resolved table grants; dbt's on-run-end (macro apply_access_grants)
#: re-applies them to the tables and views each run recreated.
GRANTS_TABLE_DDL = """
create schema if not exists ops;
create table if not exists ops.access_grants (
    role_name text not null,
    schema_name text not null,
    table_name text not null,  -- '*' = every table and view of the schema
    privileges text not null
        check (privileges ~ '^(select|insert|update|delete)(,(select|insert|update|delete))*$'),
    primary key (role_name, schema_name, table_name)
);
comment on table ops.access_grants is
    '访问授权：the table grants of include/registry/access.yaml, written by include.access setup and '
    're-applied by dbt after every run.';
"""


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)
    login: list[str] = field(default_factory=list)
    nologin: list[str] = field(default_factory=list)
    missing_tables: list[str] = field(default_factory=list)
    handed_over: int = 0


def macro_sql(name: str) -> str:
    """The SQL body of a dbt macro that holds no Jinja but comments (create_access_audit,
    create_identity_support), so setup creates exactly what dbt's on-run-start does."""
    for path in sorted((DBT_PROJECT_DIR / "macros").glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        match = re.search(
            r"\{%-?\s*macro\s+" + name + r"\(\)\s*-?%\}(.*?)\{%-?\s*endmacro\s*-?%\}", text, re.S
        )
        if match:
            body = re.sub(r"\{#.*?#\}", "", match.group(1), flags=re.S)
            if "{{" in body or "{%" in body:
                raise ValueError(f"macro {name} holds Jinja; setup cannot run it as plain SQL")
            return body
    raise ValueError(f"no macro {name} in {DBT_PROJECT_DIR / 'macros'}")


def _ident(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def _privs(privileges: list[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.SQL(p.upper()) for p in privileges)


def _ensure_role(conn: psycopg.Connection, role: Role, prefix: str, report: SetupReport) -> None:
    name = role.db_name(prefix)
    if not conn.execute("select 1 from pg_roles where rolname = %s", (name,)).fetchone():
        conn.execute(sql.SQL("create role {}").format(_ident(name)))
        report.created.append(name)
    password = role.password()
    if password:
        # libpq makes the SCRAM-SHA-256 verifier: ALTER ROLE gets it, never the password, so the
        # password cannot end up in a statement log
        verifier = conn.pgconn.encrypt_password(password.encode(), name.encode(), b"scram-sha-256").decode()
        conn.execute(sql.SQL("alter role {} login password {}").format(_ident(name), sql.Literal(verifier)))
        report.login.append(name)
    else:
        conn.execute(sql.SQL("alter role {} nologin").format(_ident(name)))
        report.nologin.append(name)
    conn.execute(sql.SQL("comment on role {} is {}").format(_ident(name), sql.Literal(role.description)))


def _table_exists(conn: psycopg.Connection, schema: str, table: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (f'"{schema}"."{table}"',)).fetchone()[0]


def _hand_over(conn: psycopg.Connection, schema: str, owner: str) -> int:
    """The role owning a schema owns what is in it (dbt must replace what an earlier run, e.g. the
    demo's superuser, built)."""
    conn.execute(sql.SQL("alter schema {} owner to {}").format(_ident(schema), _ident(owner)))
    rows = conn.execute(
        """
        select c.relname, c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f')
          and pg_get_userbyid(c.relowner) <> %s
        """,
        (schema, owner),
    ).fetchall()
    kinds = {"r": "table", "p": "table", "v": "view", "m": "materialized view", "f": "foreign table"}
    for relname, relkind in rows:
        conn.execute(
            sql.SQL("alter {} {} owner to {}").format(
                sql.SQL(kinds[relkind]), _ident(schema, relname), _ident(owner)
            )
        )
    functions = conn.execute(
        """
        select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
        where n.nspname = %s and pg_get_userbyid(p.proowner) <> %s
        """,
        (schema, owner),
    ).fetchall()
    for (signature,) in functions:
        # a function is named by its signature; regprocedure's text is PostgreSQL's own quoting of
        # it (identifiers quoted as needed), read from the catalog, never from input
        conn.execute(sql.SQL("alter function " + signature + " owner to {}").format(_ident(owner)))
    return len(rows) + len(functions)


def _apply_grant(
    conn: psycopg.Connection, grantee: str, grant: Grant, creators: list[str], report: SetupReport
) -> None:
    for schema in grant.schemas:
        conn.execute(sql.SQL("create schema if not exists {}").format(_ident(schema)))
        conn.execute(
            sql.SQL("grant {} on schema {} to {}").format(
                _privs(grant.schema_privileges), _ident(schema), _ident(grantee)
            )
        )
        if not grant.privileges:
            continue
        writes = set(grant.privileges) - {"select"}
        if grant.tables == "all":
            conn.execute(
                sql.SQL("grant {} on all tables in schema {} to {}").format(
                    _privs(grant.privileges), _ident(schema), _ident(grantee)
                )
            )
            if writes:
                conn.execute(
                    sql.SQL("grant usage, select on all sequences in schema {} to {}").format(
                        _ident(schema), _ident(grantee)
                    )
                )
            for creator in creators:
                conn.execute(
                    sql.SQL(
                        "alter default privileges for role {} in schema {} grant {} on tables to {}"
                    ).format(_ident(creator), _ident(schema), _privs(grant.privileges), _ident(grantee))
                )
                if writes:
                    conn.execute(
                        sql.SQL(
                            "alter default privileges for role {} in schema {} "
                            "grant usage, select on sequences to {}"
                        ).format(_ident(creator), _ident(schema), _ident(grantee))
                    )
            _store(conn, grantee, schema, "*", grant.privileges)
            continue
        for table in grant.tables:
            _store(conn, grantee, schema, table, grant.privileges)
            if not _table_exists(conn, schema, table):
                report.missing_tables.append(f"{schema}.{table}")
                continue
            conn.execute(
                sql.SQL("grant {} on {} to {}").format(
                    _privs(grant.privileges), _ident(schema, table), _ident(grantee)
                )
            )
            if writes:
                sequences = conn.execute(
                    """
                    select n.nspname, s.relname from pg_depend d
                    join pg_class s on s.oid = d.objid join pg_namespace n on n.oid = s.relnamespace
                    where d.refobjid = %s::regclass and s.relkind = 'S'
                    """,
                    (f'"{schema}"."{table}"',),
                ).fetchall()
                for seq_schema, seq_name in sequences:
                    conn.execute(
                        sql.SQL("grant usage, select on sequence {} to {}").format(
                            _ident(seq_schema, seq_name), _ident(grantee)
                        )
                    )


def _store(conn: psycopg.Connection, grantee: str, schema: str, table: str, privileges: list[str]) -> None:
    conn.execute(
        """
        insert into ops.access_grants (role_name, schema_name, table_name, privileges) values (%s, %s, %s, %s)
        on conflict (role_name, schema_name, table_name) do update set privileges = excluded.privileges
        """,
        (grantee, schema, table, ",".join(grant for grant in privileges)),
    )


def setup_access(url: str, registry: AccessRegistry | None = None, prefix: str | None = None) -> SetupReport:
    """Create the roles of the registry and apply their grants on the warehouse at ``url``."""
    registry = registry or load_access()
    prefix = role_prefix() if prefix is None else prefix
    report = SetupReport()
    with psycopg.connect(url) as conn:
        admin = conn.execute("select current_user").fetchone()[0]
        dbname = conn.execute("select current_database()").fetchone()[0]
        # the objects dbt's on-run-start creates, owned by the admin (not by the role running dbt)
        conn.execute(
            macro_sql("create_identity_support").split("create schema if not exists intermediate")[0]
        )
        conn.execute(macro_sql("create_access_audit"))
        conn.execute(GRANTS_TABLE_DDL)
        conn.execute(
            "delete from ops.access_grants where role_name = any(%s)",
            ([r.db_name(prefix) for r in registry.roles.values()],),
        )
        for table in ("steward.identity_overrides", "ops.access_audit", "ops.access_grants"):
            conn.execute(
                sql.SQL("alter table {} owner to {}").format(_ident(*table.split(".")), _ident(admin))
            )
        for role in registry.roles.values():
            _ensure_role(conn, role, prefix, report)
        for role in registry.roles.values():
            name = role.db_name(prefix)
            for parent in role.member_of:
                conn.execute(
                    sql.SQL("grant {} to {}").format(
                        _ident(registry.roles[parent].db_name(prefix)), _ident(name)
                    )
                )
            conn.execute(
                sql.SQL("grant {} on database {} to {}").format(
                    _privs(role.database), _ident(dbname), _ident(name)
                )
            )
            for schema in role.owned_schemas:
                conn.execute(sql.SQL("create schema if not exists {}").format(_ident(schema)))
                report.handed_over += _hand_over(conn, schema, name)
            for schema, table in role.owned_tables:
                if not _table_exists(conn, schema, table):
                    continue  # the role creates it on its first run, and owns it then
                owner = conn.execute(
                    "select pg_get_userbyid(relowner) from pg_class where oid = %s::regclass",
                    (f'"{schema}"."{table}"',),
                ).fetchone()[0]
                if owner != name:
                    conn.execute(
                        sql.SQL("alter table {} owner to {}").format(_ident(schema, table), _ident(name))
                    )
                    report.handed_over += 1
        creators = [admin] + [
            r.db_name(prefix) for r in registry.roles.values() if r.owns or "create" in r.database
        ]
        creators = list(dict.fromkeys(creators))
        for role in registry.roles.values():
            name = role.db_name(prefix)
            for grant in role.grants:
                _apply_grant(conn, name, grant, creators, report)
            for function in role.functions:
                conn.execute(
                    sql.SQL(
                        "grant execute on function " + _checked_signature(conn, function) + " to {}"
                    ).format(_ident(name))
                )
        # the transformer runs dbt's on-run-end, which reads the stored grants
        transformer = registry.owner_of("marts")
        if transformer is not None:
            conn.execute(
                sql.SQL("grant usage on schema ops to {}").format(_ident(transformer.db_name(prefix)))
            )
        conn.commit()
    return report


def _checked_signature(conn: psycopg.Connection, signature: str) -> str:
    """A function signature from the registry, resolved by PostgreSQL and given back in its own
    quoting (an unknown or malformed one fails here), so no registry text reaches SQL as is."""
    return conn.execute("select %s::regprocedure::text", (signature,)).fetchone()[0]
