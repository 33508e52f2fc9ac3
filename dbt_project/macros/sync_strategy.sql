{#- Incremental strategy 'sync' (incremental_strategy='sync', unique_key required): the model selects
    every row, as a table model would, and a run writes only the difference. It deletes the rows
    whose key is gone or whose values changed, then inserts the rows whose key is not (or no longer)
    in the table. For marts whose rows each depend on many inputs, or on every other row (quintiles
    among all customers), so that no cheap change log names the rows to recompute, but of which a
    run changes few: the rows are computed in full (into dbt's temporary table), the table is not
    rewritten, its indexes are updated for the changed rows only, and the views on it (bi, analyst,
    pii) stay in place while it builds. The result equals a full refresh by construction. -#}
{% macro get_incremental_sync_sql(arg_dict) -%}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set unique_key = arg_dict['unique_key'] -%}
    {%- if not unique_key -%}
        {{ exceptions.raise_compiler_error("incremental_strategy 'sync' needs a unique_key (" ~ target ~ ")") }}
    {%- endif -%}
    {%- set keys = [unique_key] if unique_key is string else unique_key -%}
    {%- set columns = arg_dict['dest_columns'] | map(attribute='quoted') | list -%}
    delete from {{ target }} as target
    where not exists (
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
    where not exists (
        select from {{ target }} as target
        where
            {%- for key in keys %}
            target.{{ adapter.quote(key) }} = source.{{ adapter.quote(key) }}{{ ' and' if not loop.last }}
            {%- endfor %}
    )
{%- endmacro %}
