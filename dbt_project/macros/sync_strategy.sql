{#- Incremental strategy 'sync' (incremental_strategy='sync', unique_key required): the model selects
    every row, as a table model would, and a run writes only the difference. It deletes the rows
    whose key is gone or whose values changed, then inserts the rows whose key is not (or no longer)
    in the table. For marts whose rows each depend on many inputs, or on every other row (quintiles
    among all customers), of which a run changes few: the table is not rewritten, its indexes are
    updated for the changed rows only, and the views on it (bi, analyst, pii) stay in place while it
    builds. The result equals a full refresh by construction.
    Scoped (per-customer marts: a customer_key column): when the model's pre-hook made the temporary
    table sync_scope_keys (create_sync_scope: the customers whose inputs logged a change,
    macros/key_changes.sql), the model selects those customers' rows only, and the delete and the
    insert are limited to them too; every other row stays as it is. The insert looks for the
    scoped customers' rows only: unscoped, the planner hashed the whole table to find which of the
    new rows were already there (int_golden_attributes at 1M records: 3.2M rows hashed for 60,470
    new ones, 2.4 s; 0.75 s scoped). The source is limited by a semi-join (`in`), not by
    `= any(array(...))`: that compares each row with every key, one by one (5.8 s for those rows). -#}
{% macro get_incremental_sync_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'sync' needs a unique_key (" ~ target ~ ")") }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | list -%}
    {%- set scoped = sync_scope_exists() %}
    delete from {{ target }} as target
    where
        {%- if scoped %}
        target.customer_key = any(array(select key_value from pg_temp.sync_scope_keys)) and
        {%- endif %}
        not exists (
        select from {{ source }} as source
        where
            {%- for key in keys %}
            source.{{ adapter.quote(key) }} = target.{{ adapter.quote(key) }} and
            {%- endfor %}
            (source.{{ columns | join(', source.') }})
            is not distinct from (target.{{ columns | join(', target.') }})
    );

    insert into {{ target }} ({{ columns | join(', ') }})
    select {{ columns | join(', ') }}
    from {{ source }} as source
    where
        {%- if scoped %}
        source.customer_key in (select key_value from pg_temp.sync_scope_keys) and
        {%- endif %}
        not exists (
        select from {{ target }} as target
        where
            {%- if scoped %}
            target.customer_key = any(array(select key_value from pg_temp.sync_scope_keys)) and
            {%- endif %}
            {%- for key in keys %}
            target.{{ adapter.quote(key) }} = source.{{ adapter.quote(key) }}{{ ' and' if not loop.last }}
            {%- endfor %}
    )
{%- endmacro %}

{#- Pre-hook of a scoped sync model: the temporary table sync_scope_keys of the customer keys to
    recompute (changed_keys_query over `inputs`), when they can be known and the rules (`rule_hash`,
    mart_rule_hash) are those the table was built with; else nothing, and the run syncs every row. -#}
{% macro create_sync_scope(inputs, rule_hash) -%}
    {%- set query = sync_scope_query(inputs, rule_hash) -%}
    {%- if query -%}
    {{ sync_scope_table(query) }}
    {%- else -%}
    drop table if exists pg_temp.sync_scope_keys
    {%- endif -%}
{%- endmacro %}

{#- The temporary table sync_scope_keys, for this transaction: the distinct keys (column key_value)
    `query` gives. Made by create_sync_scope, and by int_golden_attributes' pre-hook for the
    customers identity resolution touched (golden_sync_scope). -#}
{% macro sync_scope_table(query) -%}
    {{ analyzed_temp_table('sync_scope_keys',
        'select distinct key_value from (' ~ query ~ ') as changed where key_value is not null') }}
{%- endmacro %}

{#- The temporary table `name` of `query`'s rows, dropped at the end of this transaction and
    analyzed, so the queries that read it are planned on its real size (a scope computed inline
    is judged by the statistics of the tables it reads, which may predate the rows it picks). -#}
{% macro analyzed_temp_table(name, query) -%}
    create temporary table {{ name }} on commit drop as
    {{ query }};
    analyze pg_temp.{{ name }}
{%- endmacro %}

{#- The keys query of create_sync_scope, or none (compute every row). -#}
{% macro sync_scope_query(inputs, rule_hash) -%}
    {%- if not mart_incremental(rule_hash) -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(changed_keys_query(inputs)) }}
{%- endmacro %}

{#- The condition a scoped sync model adds to its per-customer inputs (`column`: their customer_key)
    when `scoped` (the model's `sync_scope_query(...) is not none`, decided once per model):
    `keyword` 'and' inside a `where`, 'where' as a whole one. Each such input needs an index on the
    column: without one, every row would walk the whole array of keys. -#}
{% macro sync_scope_condition(scoped, keyword='and', column='customer_key') -%}
    {%- if scoped -%}
    {{ keyword }} {{ column }} = any(array(select key_value from pg_temp.sync_scope_keys))
    {%- endif -%}
{%- endmacro %}

{#- This run is scoped: the pre-hook made sync_scope_keys (same session and transaction). -#}
{% macro sync_scope_exists() -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(run_query("select to_regclass('pg_temp.sync_scope_keys') is not null").columns[0].values()[0]) }}
{%- endmacro %}
