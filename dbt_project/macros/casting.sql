{#- Casts that return null instead of failing the whole model on one badly typed value. -#}

{#- Numeric from text; thousands separators and currency signs removed. -#}
{% macro safe_numeric(expr) -%}
    (case
        when regexp_replace({{ fullwidth_to_ascii(expr) }}, '[,\s¥￥$]', '', 'g') ~ '^-?[0-9]+(\.[0-9]+)?$'
        then regexp_replace({{ fullwidth_to_ascii(expr) }}, '[,\s¥￥$]', '', 'g')::numeric
    end)
{%- endmacro %}

{#- Date from 'YYYY-MM-DD', 'YYYY/M/D', 'YYYY.M.D', 'YYYY年M月D日' (anything after the date, such as a
    time, is ignored); null when the day does not exist in that month. Calls staging.safe_date(),
    made by create_casting_functions (on-run-start): one function call per value instead of an
    expression that repeats its regular expression six times. -#}
{% macro safe_date(expr) -%}
    staging.safe_date({{ expr }})
{%- endmacro %}

{#- Timestamptz from an ISO-8601 string (date-only allowed); null when not ISO shaped or the date
    or time does not exist. Naive timestamps are read in the session time zone. -#}
{% macro safe_timestamptz(expr) -%}
    staging.safe_timestamptz({{ expr }})
{%- endmacro %}

{#- on-run-start: the casting functions safe_date / safe_timestamptz call. They check every part
    (a day that does not exist in its month, 25:00, an offset past 15 h) before casting, so the cast
    cannot fail: no exception handler, which would forbid parallel query plans. -#}
{% macro create_casting_functions() %}
    create schema if not exists staging;
    create or replace function staging.safe_date(value text) returns date
    language plpgsql immutable parallel safe
    as $fn$
    declare
        parts text[];
        y int;
        m int;
        d int;
    begin
        parts := regexp_match({{ fullwidth_to_ascii('value') }}, '^\s*([0-9]{4})[-/.年]([0-9]{1,2})[-/.月]([0-9]{1,2})');
        if parts is null then
            return null;
        end if;
        y := parts[1]::int;
        m := parts[2]::int;
        d := parts[3]::int;
        if y < 1 or m not between 1 and 12 or d < 1
            or d > extract(day from make_date(y, m, 1) + interval '1 month - 1 day') then
            return null;
        end if;
        return make_date(y, m, d);
    end
    $fn$;
    {#- One SQL expression (inlined into the calling query: no PL/pgSQL call per value) and one
        regular expression whose ranges already reject 25:00, minute 60 and offsets past 15 h; only
        days 29-31 and year 0 need a further check (safe_date's). About 2.5x cheaper than checking
        the parts one by one in PL/pgSQL. -#}
    create or replace function staging.safe_timestamptz(value text) returns timestamptz
    language sql stable parallel safe
    as $fn$
        select case
            when value ~ '^\s*[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?:[ T]([01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]+)?)?)?\s*(?:Z|[+-](0[0-9]|1[0-5])(?::?[0-5][0-9])?)?\s*$'
                and (left(value, 1) between '0' and '9' and substr(value, 9, 2) <= '28'
                    and left(value, 4) <> '0000'
                    or staging.safe_date(value) is not null)
            then value::timestamptz
        end
    $fn$;
{% endmacro %}

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
