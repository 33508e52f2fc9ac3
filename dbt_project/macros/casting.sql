{#- Casts that return null instead of failing the whole model on one badly typed value. -#}

{#- Numeric from text; thousands separators and currency signs removed. -#}
{% macro safe_numeric(expr) -%}
    (case
        when regexp_replace({{ fullwidth_to_ascii(expr) }}, '[,\s¥￥$]', '', 'g') ~ '^-?[0-9]+(\.[0-9]+)?$'
        then regexp_replace({{ fullwidth_to_ascii(expr) }}, '[,\s¥￥$]', '', 'g')::numeric
    end)
{%- endmacro %}

{#- Date from 'YYYY-MM-DD', 'YYYY/M/D', 'YYYY.M.D', 'YYYY年M月D日' (anything after the date, such as a
    time, is ignored); null when the day does not exist in that month. -#}
{% macro safe_date(expr) -%}
    {%- set m = "regexp_match(" ~ fullwidth_to_ascii(expr) ~ ", '^\\s*([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})')" -%}
    (case
        when {{ m }} is not null
            and ({{ m }})[2]::int between 1 and 12
            and ({{ m }})[3]::int between 1 and extract(day from (
                make_date(({{ m }})[1]::int, ({{ m }})[2]::int, 1) + interval '1 month - 1 day'))
        then make_date(({{ m }})[1]::int, ({{ m }})[2]::int, ({{ m }})[3]::int)
    end)
{%- endmacro %}

{#- Timestamptz from an ISO-8601 string (date-only allowed); null when not ISO shaped or the date
    part does not exist. Naive timestamps are read in the session time zone. -#}
{% macro safe_timestamptz(expr) -%}
    (case
        when {{ expr }} ~ '^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?\s*(Z|[+-][0-9]{2}(:?[0-9]{2})?)?\s*$'
            and {{ safe_date(expr) }} is not null
            and coalesce(substring({{ expr }} from '[ T]([0-9]{2}):')::int, 0) < 24
        then ({{ expr }})::timestamptz
    end)
{%- endmacro %}

{#- The latest landed version of each record: newest source update first, then newest load. -#}
{% macro latest_record_version(cte_name) -%}
    select * from (
        select distinct on (_record_id) *
        from {{ cte_name }}
        order by _record_id, _source_updated_at desc nulls last, _loaded_at desc
    ) as latest_versions
    {#- a tombstone (full sync found the record gone) as the latest version: the record is deleted #}
    where _deleted is not true
{%- endmacro %}

{#- Rank of a source system in a survivorship priority list (first = 1; unlisted sources last). -#}
{% macro source_rank(priority, source_col='source_system') -%}
    (case {{ source_col }}
        {%- for src in priority %}
        when '{{ src }}' then {{ loop.index }}
        {%- endfor %}
        else 99
    end)
{%- endmacro %}
