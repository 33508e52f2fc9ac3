{#- Key change logs: which customers' rows a run changed, for the per-customer marts downstream.

    A mart keyed by customer_key that reads other tables (order statistics, lifecycle, the 360 row)
    needs recomputing only for the customers whose input rows changed. Each input table logs them: a
    statement trigger (log_key_changes, added by that model's post-hook) writes the distinct
    customer_key of every row inserted, updated or deleted to ops.key_changes, whatever wrote it (an
    incremental strategy, a pre-hook's delete, a steward's fix). A consumer reads the entries logged
    after the last one it consumed (ops.key_change_consumers), recomputes those customers only
    (incremental_strategy 'sync' with `key_change_inputs`: macros/sync_strategy.sql) and marks how far
    it read. It computes every row instead (the result is the same) when it cannot know what changed:
    its first run, an input rebuilt (a full refresh makes a new table: its oid differs from the one the
    consumer recorded), truncated (logged as a null key) or without its triggers. -#}

{#- on-run-start: the log, the consumers' positions and the trigger function (in intermediate, the
    schema dbt's role owns with what is in it, like intermediate.product: ops holds tables others
    own). -#}
{% macro create_key_change_log() %}
    do $key_changes$
    begin
        if to_regclass('ops.key_changes') is null then
            create schema if not exists ops;
            create table ops.key_changes (
                change_id bigint generated always as identity primary key,
                relation_name text not null,
                key_value text,
                changed_at timestamptz not null default now()
            );
            create index key_changes_relation_change_idx on ops.key_changes (relation_name, change_id);
            comment on table ops.key_changes is
                'The keys (customer_key) of the rows each tracked table changed, one entry per key and statement; a null key_value: every key (a truncate). Kept until every consumer has read it.';
        end if;
        if to_regclass('ops.key_change_consumers') is null then
            create table ops.key_change_consumers (
                consumer text not null,
                relation_name text not null,
                relation_oid oid not null,
                consumed_change_id bigint not null,
                updated_at timestamptz not null default now(),
                primary key (consumer, relation_name)
            );
            comment on table ops.key_change_consumers is
                'How far each consumer (a model) has read ops.key_changes of each input, and the input table it read (its oid: a rebuilt table is a new one).';
        end if;
    end
    $key_changes$;

    create schema if not exists intermediate;
    create or replace function intermediate.log_key_changes() returns trigger
    language plpgsql as $log$
    declare
        relation_name text := format('%s.%s', tg_table_schema, tg_table_name);
    begin
        if tg_op = 'TRUNCATE' then
            insert into ops.key_changes (relation_name, key_value) values (relation_name, null);
            return null;
        end if;
        if tg_op in ('INSERT', 'UPDATE') then
            execute format(
                'insert into ops.key_changes (relation_name, key_value) '
                'select distinct $1, %1$I::text from new_rows where %1$I is not null', tg_argv[0]
            ) using relation_name;
        end if;
        if tg_op in ('DELETE', 'UPDATE') then
            execute format(
                'insert into ops.key_changes (relation_name, key_value) '
                'select distinct $1, %1$I::text from old_rows where %1$I is not null', tg_argv[0]
            ) using relation_name;
        end if;
        return null;
    end
    $log$;
{% endmacro %}

{% macro key_change_trigger_names() -%}
    {{- return({'INSERT': 'c360_key_changes_insert', 'UPDATE': 'c360_key_changes_update',
                'DELETE': 'c360_key_changes_delete', 'TRUNCATE': 'c360_key_changes_truncate'}) -}}
{%- endmacro %}

{#- Post-hook of a model whose changes its consumers read: the log triggers on `column`, added when
    missing (a new or rebuilt table); on a steady run, one catalog query and nothing else. -#}
{% macro log_key_changes(column='customer_key') -%}
    {%- if not execute or model.config.materialized not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set names = key_change_trigger_names() -%}
    {%- set existing_query -%}
        select count(*) from pg_trigger
        where tgrelid = {{ regclass_of(this) }} and tgname = any({{ text_array(names.values() | list) }})
    {%- endset -%}
    {%- if run_query(existing_query).columns[0].values()[0] == names | length -%}
        {{ return('') }}
    {%- endif -%}
    {%- for event, name in names.items() %}
    drop trigger if exists {{ name }} on {{ this }};
    create trigger {{ name }} after {{ event | lower }} on {{ this }}
    {%- if event == 'INSERT' %} referencing new table as new_rows
    {%- elif event == 'UPDATE' %} referencing old table as old_rows new table as new_rows
    {%- elif event == 'DELETE' %} referencing old table as old_rows
    {%- endif %}
    for each statement execute function intermediate.log_key_changes('{{ column }}');
    {%- endfor %}
{%- endmacro %}

{#- The keys changed in this model's inputs (`inputs`: model names it refs) since it last read them:
    a query of key_value, or none when they cannot be known (see the top of this file). Rendered by
    the model's SQL and by its incremental strategy in one run, with the same answer. -#}
{% macro changed_keys_query(inputs) -%}
    {%- if not execute or not is_incremental() or not inputs
          or adapter.get_relation(database=target.database, schema='ops', identifier='key_change_consumers') is none -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set names = key_change_trigger_names() -%}
    {%- set state_query -%}
        select
            inputs.relation_name,
            consumers.consumed_change_id,
            consumers.relation_oid is not distinct from to_regclass(inputs.relation_name)::oid
            and (
                select count(*) from pg_trigger
                where tgrelid = to_regclass(inputs.relation_name)
                    and tgname = any({{ text_array(names.values() | list) }})
            ) = {{ names | length }}
            and not exists (
                select from ops.key_changes
                where key_changes.relation_name = inputs.relation_name
                    and key_changes.change_id > consumers.consumed_change_id
                    and key_changes.key_value is null
            ) as knowable
        from unnest({{ text_array(key_change_input_names(inputs)) }}) as inputs (relation_name)
        left join ops.key_change_consumers as consumers
            on consumers.consumer = '{{ key_change_consumer() }}'
            and consumers.relation_name = inputs.relation_name
    {%- endset -%}
    {%- set rows = run_query(state_query).rows -%}
    {%- for row in rows if not row[2] -%}
        {{ return(none) }}
    {%- endfor -%}
    {%- set query -%}
        {%- for row in rows %}
        select key_value from ops.key_changes
        where relation_name = '{{ row[0] }}' and change_id > {{ row[1] }}
        {{- "\n        union" if not loop.last }}
        {%- endfor %}
    {%- endset -%}
    {{ return(query) }}
{%- endmacro %}

{% macro key_change_consumer() -%}
    {{ this.schema }}.{{ this.identifier }}
{%- endmacro %}

{#- `inputs` (model names) as the schema-qualified names the triggers log. -#}
{% macro key_change_input_names(inputs) -%}
    {%- set names = [] -%}
    {%- for input in inputs -%}
        {%- set relation = ref(input) -%}
        {%- do names.append(relation.schema ~ '.' ~ relation.identifier) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#- Post-hook of a consumer: it has read its inputs' key changes up to now (its own transaction; no
    input writes while it runs), and each input's entries every consumer has read are dropped. -#}
{% macro mark_key_changes_read(inputs) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- for name in key_change_input_names(inputs) %}
    insert into ops.key_change_consumers (consumer, relation_name, relation_oid, consumed_change_id)
    select '{{ key_change_consumer() }}', '{{ name }}', to_regclass('{{ name }}')::oid,
        coalesce((select max(change_id) from ops.key_changes where relation_name = '{{ name }}'), 0)
    on conflict (consumer, relation_name) do update
    set relation_oid = excluded.relation_oid, consumed_change_id = excluded.consumed_change_id, updated_at = now();
    delete from ops.key_changes
    where relation_name = '{{ name }}'
        and change_id <= (
            select min(consumed_change_id) from ops.key_change_consumers where relation_name = '{{ name }}'
        );
    {%- endfor %}
{%- endmacro %}
