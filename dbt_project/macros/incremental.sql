{#- Incremental helpers: change detection on the landing metadata of the raw tables. -#}

{#- Since when this model must re-read landed rows (a timestamptz literal): the start of its last
    run (ops.incremental_progress, consumer '<model> <- landed', written by its post-hook
    mark_landing_read), less var staging_lookback_minutes for landings that committed while that run
    was reading; before the first such mark, the newest `column` already in this model (or in
    `relation`) less the lookback. Measured from the last run, not from the data, so a bulk load
    landed long before is not read again. Taken once per statement that renders it; the model's SQL
    and its pre-hook render it before anything is written, so both see the same instant. -#}
{% macro incremental_watermark(column='loaded_at', relation=none) -%}
    {%- if execute and (relation is not none or is_incremental()) -%}
        {%- set query -%}
            select coalesce(
                {%- if progress_table_exists() %}
                (select {{ to_microseconds('consumed_through') }} from ops.incremental_progress
                 where consumer = '{{ this.identifier }} <- landed'),
                {%- endif %}
                (select {{ to_microseconds('max(' ~ column ~ ')') }} from {{ relation or this }})
            )
        {%- endset -%}
        ({{ epoch_literal(run_query(query).columns[0].values()[0]) }}
            - interval '{{ var("staging_lookback_minutes") }} minutes')
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of a model reading landed rows by incremental_watermark: this run read them. -#}
{% macro mark_landing_read() -%}
    insert into ops.incremental_progress (consumer, consumed_through)
    values ('{{ this.identifier }} <- landed', '{{ run_started_at }}'::timestamptz)
    on conflict (consumer) do update
    set consumed_through = excluded.consumed_through, updated_at = now()
{%- endmacro %}

{#- Record ids of `raw_relation` with a version (or tombstone) landed since the watermark. -#}
{% macro changed_raw_record_ids(raw_relation) -%}
    select _record_id from {{ raw_relation }} where _loaded_at >= {{ incremental_watermark() }}
{%- endmacro %}

{#- The `where` of an incremental staging model's source CTE: only the records with a version
    landed since the last run (their latest version is then recomputed over all their versions).
    `= any(array(...))` is an index scan on the raw table's record id. -#}
{% macro staging_changed_records_filter(raw_relation) -%}
    {%- if is_incremental() %}
    where _record_id = any(array({{ changed_raw_record_ids(raw_relation) }}))
    {%- endif %}
{%- endmacro %}

{#- Pre-hook of an incremental staging model: delete the rows of the records about to be recomputed
    (the model then appends their latest version, or nothing when it is a tombstone), inside the
    model's transaction. -#}
{% macro delete_changed_staging_rows(id_column, raw_relation) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where {{ id_column }} = any(array({{ changed_raw_record_ids(raw_relation) }}))
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Change logs. An incremental model that consumes a change log (an append-only model whose rows
    carry the time they were logged) remembers how far it has consumed it in
    ops.incremental_progress (one row per consumer; made by create_incremental_progress):
    a run takes every entry logged after that point, so a run that failed half-way is simply caught
    up by the next one, whichever models it reached. Recomputing an entry twice changes nothing. -#}
{% macro create_incremental_progress() %}
    {#- created once (by whoever runs dbt first), then only read and written: dbt running as the
        transformer role may not alter or comment on a table the admin created -#}
    do $progress$
    begin
        if to_regclass('ops.incremental_progress') is null then
            create schema if not exists ops;
            create table ops.incremental_progress (
                consumer text primary key,
                consumed_through timestamptz not null,
                config_hash text,
                updated_at timestamptz not null default now()
            );
            comment on table ops.incremental_progress is
                'How far each incremental model has consumed its change log (logged-at time of the newest entry it applied), and the identity configuration its rows were built with.';
        end if;
    end
    $progress$;
{% endmacro %}

{#- The logged-at time up to which this model has consumed the change log `log_relation`, as a
    literal ('-infinity' before it first did). -#}
{% macro consumed_through(log_relation) -%}
    {%- if execute and not is_unit_test_fixture(log_relation) and progress_table_exists() -%}
        {%- set query -%}
            select {{ to_microseconds('max(consumed_through)') }}
            from ops.incremental_progress
            where consumer = '{{ progress_consumer(log_relation) }}'
        {%- endset -%}
        {{ epoch_literal(run_query(query).columns[0].values()[0]) }}
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{% macro progress_consumer(log_relation) -%}
    {{ this.identifier }} <- {{ log_relation.identifier }}
{%- endmacro %}

{#- The newest logged-at time in a change log (`column` of `log_relation`), as a literal: the point
    this run consumes up to. -#}
{% macro log_high_water(log_relation, column) -%}
    {%- if is_unit_test_fixture(log_relation) -%}
        'infinity'::timestamptz
    {%- elif execute and relation_exists(log_relation) -%}
        {%- set query -%}
            select {{ to_microseconds('max(' ~ column ~ ')') }} from {{ log_relation }}
        {%- endset -%}
        {{ epoch_literal(run_query(query).columns[0].values()[0]) }}
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#- A timestamp handed from a query to SQL text exactly: whole microseconds since the epoch (null and
    -infinity: -infinity), and back. -#}
{% macro to_microseconds(expression) -%}
    (case when isfinite({{ expression }}) then (extract(epoch from {{ expression }}) * 1000000)::bigint end)
{%- endmacro %}

{% macro epoch_literal(microseconds) -%}
    {%- if microseconds is none -%}
        '-infinity'::timestamptz
    {%- else -%}
        ('epoch'::timestamptz + {{ microseconds | int }} * interval '1 microsecond')
    {%- endif -%}
{%- endmacro %}

{#- Post-hook of a change-log consumer: it has now consumed `log_relation` up to the high water mark
    its SQL read (same statement, same transaction as the model's own writes). -#}
{% macro mark_consumed(log_relation, column) -%}
    insert into ops.incremental_progress (consumer, consumed_through)
    select '{{ progress_consumer(log_relation) }}', {{ log_high_water(log_relation, column) }}
    on conflict (consumer) do update
    set consumed_through = excluded.consumed_through, updated_at = now()
{%- endmacro %}

{#- Post-hook: ANALYZE the model's table when its statistics are missing or stale (more than a tenth
    of it changed since the last analyze), so the next model's joins are planned on real figures,
    without paying a full ANALYZE on every small incremental run. A view has no statistics of its own. -#}
{% macro analyze_if_stale() -%}
    {%- if model.config.materialized not in ('table', 'incremental') -%}
    select 1
    {%- else -%}
    do $analyze$
    begin
        if coalesce((
            select coalesce(last_analyze, last_autoanalyze) is null
                or n_mod_since_analyze > 0.1 * greatest(n_live_tup, 1000)
            from pg_stat_user_tables
            where relid = '{{ this }}'::regclass
        ), true) then
            analyze {{ this }};
        end if;
    end
    $analyze$
    {%- endif -%}
{%- endmacro %}

{#- The records logged in `log_relation` (int_identity_touched_records) since this model last
    consumed it: the body of a CTE. -#}
{% macro touched_records(log_relation, column='touched_at') -%}
    select distinct customer_record_id
    from {{ log_relation }}
    where
        {{ column }} > {{ consumed_through(log_relation) }}
        and {{ column }} <= {{ log_high_water(log_relation, column) }}
{%- endmacro %}

{#- Pre-hook of a pair table (evidence, edges) on incremental runs: delete every pair with a touched
    record; the model then appends them recomputed. -#}
{% macro delete_touched_pairs(log_relation) -%}
    {%- if is_incremental() and not identity_incremental() -%}
    delete from {{ this }}
    {%- elif is_incremental() -%}
    delete from {{ this }}
    where
        record_id_a = any(array({{ touched_records(log_relation) }}))
        or record_id_b = any(array({{ touched_records(log_relation) }}))
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- The records logged in int_identity_affected_records since this model last consumed it. -#}
{% macro affected_records(log_relation) -%}
    select distinct customer_record_id
    from {{ log_relation }}
    where
        affected_at > {{ consumed_through(log_relation) }}
        and affected_at <= {{ log_high_water(log_relation, 'affected_at') }}
{%- endmacro %}

{#- Pre-hook of a per-record clustering table on incremental runs: delete the affected records' rows;
    the model appends them recomputed. -#}
{% macro delete_affected_records(log_relation) -%}
    {%- if is_incremental() and not identity_incremental() -%}
    delete from {{ this }}
    {%- elif is_incremental() -%}
    delete from {{ this }}
    where customer_record_id = any(array({{ affected_records(log_relation) }}))
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- In a dbt unit test a ref is a fixture CTE, which a separate query cannot read: the consumed and
    high-water marks are then -infinity and infinity, so the whole fixture is pending. -#}
{% macro is_unit_test_fixture(relation) -%}
    {{- return((relation | string).strip('"').startswith('__dbt__cte__')) -}}
{%- endmacro %}

{#- Identity resolution's incremental models rebuild everything when the configuration they were
    built with (vars identity and survivorship) changed since their last run: a new threshold or rule
    applies to every record, not only to the changed ones. -#}
{% macro identity_config_hash() -%}
    {{- return(local_md5(tojson(var('identity'), sort_keys=true) ~ tojson(var('survivorship'), sort_keys=true))) -}}
{%- endmacro %}

{% macro identity_config_changed() -%}
    {{- return(recorded_hash_differs('config', identity_config_hash())) -}}
{%- endmacro %}

{#- The hash this model recorded in ops.incremental_progress under '<model> <- <kind>' differs from
    `current_hash`, or none was recorded (never in a unit test fixture, nor at parse time). -#}
{% macro recorded_hash_differs(kind, current_hash) -%}
    {%- if not execute or is_unit_test_fixture(this) -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- if not progress_table_exists() -%}
        {{- return(true) -}}
    {%- endif -%}
    {%- set query -%}
        select config_hash from ops.incremental_progress where consumer = '{{ this.identifier }} <- {{ kind }}'
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {{- return(rows | length == 0 or rows[0][0] != current_hash) -}}
{%- endmacro %}

{#- is_incremental(), and the identity configuration unchanged: the model may work on the changes only. -#}
{% macro identity_incremental() -%}
    {{- return(is_incremental() and not identity_config_changed()) -}}
{%- endmacro %}

{#- Post-hook: the identity configuration this model's rows are now built with. -#}
{% macro mark_identity_config() -%}
    insert into ops.incremental_progress (consumer, consumed_through, config_hash)
    values ('{{ this.identifier }} <- config', now(), '{{ identity_config_hash() }}')
    on conflict (consumer) do update
    set config_hash = excluded.config_hash, consumed_through = excluded.consumed_through, updated_at = now()
{%- endmacro %}

{#- Compile-time reads (the marks above) must not fail where nothing was built yet: `dbt compile` or
    `dbt docs generate` on an empty warehouse runs no on-run-start hook. -#}
{% macro relation_exists(relation) -%}
    {{- return(adapter.get_relation(database=relation.database, schema=relation.schema, identifier=relation.identifier) is not none) -}}
{%- endmacro %}

{% macro progress_table_exists() -%}
    {{- return(ops_table_exists('incremental_progress')) -}}
{%- endmacro %}

{#- Whether the on-run-start hooks have made table ops.<identifier>: looked up in dbt's relation
    cache, which cache_ops_relations fills for schema ops before the model threads start. -#}
{% macro ops_table_exists(identifier) -%}
    {{- return(adapter.get_relation(database=target.database, schema='ops', identifier=identifier) is not none) -}}
{%- endmacro %}

{#- Last on-run-start hook: put schema ops into dbt's relation cache now, on one thread, after the
    hooks before it created its tables. Models look up ops tables through that cache
    (ops_table_exists), and ops holds no model, so dbt would list it at the first lookup, on
    whichever node thread came first. That listing marks the schema cached when it adds its first
    table, so another thread looking up at that moment finds ops cached and the table missing: a
    model then compiled as if ops.incremental_progress did not exist (seen: a mart rewrote every
    row; an append model's pre-hook, rendered later, would delete only the changed rows before its
    full select went in on top of the rest). -#}
{% macro cache_ops_relations() -%}
    {%- if execute -%}
        {%- do progress_table_exists() -%}
    {%- endif -%}
    select 1
{%- endmacro %}
