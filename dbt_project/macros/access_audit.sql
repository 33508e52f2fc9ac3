{#- Access audit: who (session and current role) changed the stewards' identity overrides, and
    who read full personal data (the views of schema pii).

    ops.access_audit    one row per changed override row (INSERT / UPDATE / DELETE, old and new row)
                        and one per statement reading a pii view (SELECT, the statement's text)
    ops.audit_access()  SECURITY DEFINER writer: readers and stewards cannot write the table directly
    ops.log_pii_read()  what a pii view calls once per statement (an uncorrelated sub-select in its
                        WHERE, which PostgreSQL evaluates once, as an init plan, before any row);
                        it also writes a LOG line to the server log, which a rolled-back transaction
                        cannot take back

    Created by the first dbt run (on-run-start) or by `python -m include.access setup`; afterwards
    only their owner (the project's admin, see include/access) may replace them, so dbt running as
    the transformer role leaves them alone. -#}
{% macro create_access_audit() %}
    do $audit$
    declare
        is_admin boolean := (select rolsuper from pg_roles where rolname = current_user);
        fn_owner text;
    begin
        if to_regclass('ops.access_audit') is null then
            create schema if not exists ops;
            create table ops.access_audit (
                audit_id bigint generated always as identity primary key,
                occurred_at timestamptz not null default clock_timestamp(),
                session_user_name text not null,
                current_user_name text not null,
                action text not null check (action in ('INSERT', 'UPDATE', 'DELETE', 'SELECT')),
                relation text not null,
                old_row jsonb,
                new_row jsonb,
                statement text,
                transaction_id bigint not null default txid_current()
            );
            comment on table ops.access_audit is
                '访问审计：Who changed steward.identity_overrides (one row per changed row) and who read full personal data (one row per statement reading a pii view).';
            revoke all on ops.access_audit from public;
        end if;

        select pg_get_userbyid(proowner) into fn_owner from pg_proc
        where oid = to_regprocedure('ops.audit_access(text, text, text, jsonb, jsonb)');
        if fn_owner is null or fn_owner = current_user or is_admin then
            create or replace function ops.audit_access(
                acting_role text, action text, relation text, old_row jsonb, new_row jsonb
            ) returns void
            language plpgsql security definer set search_path = pg_catalog, pg_temp
            as $fn$
            begin
                -- the acting role is the caller's word: it must at least be one its login holds
                if not pg_has_role(session_user, acting_role, 'MEMBER') then
                    raise exception 'access audit: % is not a role of session user %', acting_role, session_user;
                end if;
                insert into ops.access_audit
                    (session_user_name, current_user_name, action, relation, old_row, new_row, statement)
                values (session_user, acting_role, action, relation, old_row, new_row, left(current_query(), 4000));
            end
            $fn$;
            revoke all on function ops.audit_access(text, text, text, jsonb, jsonb) from public;

            -- the trigger function runs as the changing role (so current_user is theirs) and hands
            -- the row to the definer function, the only way into the audit table
            create or replace function ops.audit_identity_override() returns trigger
            language plpgsql set search_path = pg_catalog, pg_temp
            as $fn$
            begin
                perform ops.audit_access(
                    current_user::text, tg_op, tg_table_schema || '.' || tg_table_name,
                    case when tg_op in ('UPDATE', 'DELETE') then to_jsonb(old) end,
                    case when tg_op in ('INSERT', 'UPDATE') then to_jsonb(new) end
                );
                return null;
            end
            $fn$;

            create or replace function ops.log_pii_read(relation text, acting_role text) returns boolean
            language plpgsql volatile security definer set search_path = pg_catalog, pg_temp
            as $fn$
            begin
                if not pg_has_role(session_user, acting_role, 'MEMBER') then
                    raise exception 'access audit: % is not a role of session user %', acting_role, session_user;
                end if;
                raise log 'c360 pii read: % by % (session %)', relation, acting_role, session_user;
                insert into ops.access_audit (session_user_name, current_user_name, action, relation, statement)
                values (session_user, acting_role, 'SELECT', relation, left(current_query(), 4000));
                return true;
            end
            $fn$;
            revoke all on function ops.log_pii_read(text, text) from public;
        end if;

        if to_regclass('steward.identity_overrides') is not null and not exists (
            select from pg_trigger
            where tgrelid = 'steward.identity_overrides'::regclass and tgname = 'identity_overrides_audit'
        ) then
            create trigger identity_overrides_audit
                after insert or update or delete on steward.identity_overrides
                for each row execute function ops.audit_identity_override();
        end if;
    end
    $audit$;
{% endmacro %}

{#- The body of an audited full-PII view (schema pii): every column of the mart, and a read log
    entry per statement. current_user inside a view is the reading role. -#}
{% macro audited_view(model_name) -%}
select m.*
from {{ ref(model_name) }} as m
where (select ops.log_pii_read('{{ this.schema }}.{{ this.identifier }}', current_user::text))
{%- endmacro %}

{#- on-run-end: re-apply the table grants of include/registry/access.yaml (stored in
    ops.access_grants by `python -m include.access setup`) to the tables and views this role owns:
    dbt recreates them on every build, and default privileges only cover the roles setup knew of.
    A no-op before the access setup has run (the demo's single superuser needs none). -#}
{% macro apply_access_grants() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set stored = run_query("select to_regclass('ops.access_grants') is not null") -%}
    {%- if not stored.columns[0].values()[0] -%}{{ return('') }}{%- endif -%}
    {%- set rows = run_query("
        select g.role_name, n.nspname, c.relname, g.privileges
        from ops.access_grants as g
        join pg_namespace as n on n.nspname = g.schema_name
        join pg_class as c on c.relnamespace = n.oid and c.relkind in ('r', 'p', 'v', 'm')
            and (g.table_name = '*' or c.relname = g.table_name)
        join pg_roles as r on r.rolname = g.role_name
        where pg_has_role(current_user, c.relowner, 'USAGE')
        order by 1, 2, 3") -%}
    {%- set allowed = ['select', 'insert', 'update', 'delete'] -%}
    {%- set statements = [] -%}
    {%- for row in rows -%}
        {%- set privileges = row[3].split(',') -%}
        {%- for p in privileges if p not in allowed -%}
            {{ exceptions.raise_compiler_error('ops.access_grants: unknown privilege ' ~ p) }}
        {%- endfor -%}
        {%- do statements.append('grant ' ~ (privileges | join(', ')) ~ ' on ' ~ adapter.quote(row[1]) ~ '.'
            ~ adapter.quote(row[2]) ~ ' to ' ~ adapter.quote(row[0])) -%}
    {%- endfor -%}
    {{ return(statements | join(';\n')) }}
{% endmacro %}
