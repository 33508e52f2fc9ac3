{#- Fails (one row) unless the model's table has a valid unique index on exactly `columns`, in
    that order; with `predicate`, a partial one whose predicate contains it (e.g. 'dbt_valid_to is
    null'). For large history tables whose uniqueness the database enforces on every insert, so a
    full-table uniqueness scan on every run would only repeat it. -#}
{% test has_unique_index(model, columns, predicate=none) %}

select '{{ columns | join(", ") }}{{ " where " ~ predicate if predicate else "" }}' as missing_unique_index
where not exists (
    select 1
    from pg_index as i
    where
        i.indrelid = '{{ model }}'::regclass
        and i.indisunique
        and i.indisvalid
        and (
            select array_agg(a.attname::text order by k.ord)
            from unnest(i.indkey::int2[]) with ordinality as k (attnum, ord)
            inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
        ) = array[{% for column in columns %}'{{ column }}'{{ ", " if not loop.last }}{% endfor %}]::text[]
        {%- if predicate %}
        and pg_get_expr(i.indpred, i.indrelid) ilike '%{{ predicate }}%'
        {%- else %}
        and i.indpred is null
        {%- endif %}
)

{% endtest %}
