{#- Incremental marts. A mart built incrementally recomputes only the rows touched since its last run:
    source records landed since then (incremental_watermark: that run's start less var
    staging_lookback_minutes) and rows whose customer moved to another customer_key (merge, split,
    new or removed record: int_customer_key_assignments.changed_at). Its rows also depend on business
    rules (vars such as fx_to_cny, the identity configuration, the as-of date): their hash is stored
    per mart in ops.incremental_progress (consumer '<mart> <- rules', written by mark_mart_rules), and
    when it differs the run rebuilds the mart whole (the pre-hook empties it, the model selects every
    row). -#}

{#- md5 of what a mart's rows depend on besides its inputs: the vars named, the as-of date (for rules
    evaluated on a day, such as days overdue; today's date when var as_of_date is unset) and the
    identity configuration. -#}
{% macro mart_rule_hash(var_names=[], as_of=false, identity=false, suppressions=false) -%}
    {%- set parts = {} -%}
    {%- for name in var_names -%}
        {%- do parts.update({name: var(name)}) -%}
    {%- endfor -%}
    {%- if as_of -%}
        {%- do parts.update({'as_of_date': mart_as_of_day()}) -%}
    {%- endif -%}
    {%- if identity -%}
        {%- do parts.update({'identity': identity_config_hash()}) -%}
    {%- endif -%}
    {%- if suppressions and execute -%}
        {%- do parts.update({'suppressions': suppressions_hash()}) -%}
    {%- endif -%}
    {{- return(local_md5(tojson(parts, sort_keys=true))) -}}
{%- endmacro %}

{#- md5 of the contacts on the suppression list (ops.contact_suppressions), which withdraw consent:
    a list kept by hand and by the push flows, small and rarely changed. -#}
{% macro suppressions_hash() -%}
    {%- set suppressions = source('ops', 'contact_suppressions') -%}
    {%- if is_unit_test_fixture(suppressions) -%}
        {{- return('fixture') -}}
    {%- endif -%}
    {%- set query -%}
        select md5(coalesce(string_agg(contact, ',' order by contact), '')) from {{ suppressions }}
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}

{#- The day as_of_date() evaluates to, as text: the var, else the database's current date. -#}
{% macro mart_as_of_day() -%}
    {%- if var('as_of_date', none) -%}
        {{- return(var('as_of_date') | string) -}}
    {%- elif execute -%}
        {{- return(run_query('select current_date::text').columns[0].values()[0]) -}}
    {%- else -%}
        {{- return('today') -}}
    {%- endif -%}
{%- endmacro %}

{#- The rules this mart's rows were built with differ from `rule_hash` (or were never recorded). -#}
{% macro mart_rules_changed(rule_hash) -%}
    {{- return(recorded_hash_differs('rules', rule_hash)) -}}
{%- endmacro %}

{#- is_incremental(), and the rules unchanged: the mart may recompute the touched rows only. -#}
{% macro mart_incremental(rule_hash) -%}
    {{- return(is_incremental() and not mart_rules_changed(rule_hash)) -}}
{%- endmacro %}

{#- Post-hook: the rules this mart's rows are now built with. -#}
{% macro mark_mart_rules(rule_hash) -%}
    insert into ops.incremental_progress (consumer, consumed_through, config_hash)
    values ('{{ this.identifier }} <- rules', now(), '{{ rule_hash }}')
    on conflict (consumer) do update
    set config_hash = excluded.config_hash, consumed_through = excluded.consumed_through, updated_at = now()
{%- endmacro %}

{#- Since when this mart re-reads: its last run's start (mark_landing_read), less the lookback for
    what landed (a landing may commit while dbt runs; `lookback=false` for what dbt itself stamped
    with a run's start: key changes, the identity change log); '-infinity' (everything) before the
    first mark. -#}
{% macro mart_watermark(lookback=true) -%}
    {%- if execute and progress_table_exists() -%}
        {%- set query -%}
            select {{ to_microseconds('consumed_through') }} from ops.incremental_progress
            where consumer = '{{ this.identifier }} <- landed'
        {%- endset -%}
        {%- set rows = run_query(query).rows -%}
        {%- if rows | length == 0 -%}
            '-infinity'::timestamptz
        {%- else -%}
            {%- if lookback -%}
            ({{ epoch_literal(rows[0][0]) }} - interval '{{ var("staging_lookback_minutes") }} minutes')
            {%- else -%}
            {{ epoch_literal(rows[0][0]) }}
            {%- endif -%}
        {%- endif -%}
    {%- else -%}
        '-infinity'::timestamptz
    {%- endif -%}
{%- endmacro %}

{#- Ids of `raw_relation` with a version (or tombstone) landed since the watermark. -#}
{% macro mart_landed_ids(raw_relation) -%}
    select _record_id from {{ raw_relation }} where _loaded_at >= {{ mart_watermark() }}
{%- endmacro %}

{#- Customer records (customer_record_id) whose customer_key changed since the watermark, with the
    keys they left and joined. changed_at is the start of the run that changed it: a change stamped
    with the last run's own start was made, and read, in that run. -#}
{% macro mart_rekeyed_records() -%}
    select customer_record_id, customer_key, previous_customer_key
    from {{ ref('int_customer_key_assignments') }}
    where changed_at > {{ mart_watermark(lookback=false) }}
{%- endmacro %}

{#- Source record ids of `source_system` whose customer_key changed since the watermark, from
    mart_rekeyed_records(), or from the CTE `rekeyed_cte` holding it. Cut from the byte-ordered
    record ids (macro customer_record_rows), they are labelled back to the database's collation,
    which source record ids keep: compared byte by byte, the staging models' and marts' indexes on
    them could not serve the lookup. -#}
{% macro mart_rekeyed_source_ids(source_system, rekeyed_cte=none) -%}
    select substr(customer_record_id, {{ source_system | length + 2 }}) collate "default"
    from {{ rekeyed_cte if rekeyed_cte else '(' ~ mart_rekeyed_records() ~ ') as rekeyed' }}
    where customer_record_id like '{{ source_system }}:%'
{%- endmacro %}

{#- Customer records to recompute in the identity marts: changed or new (int_customer_records landed
    since the watermark), re-keyed, or affected by identity resolution (int_identity_affected_records:
    their links, components or clusters were recomputed). -#}
{% macro mart_touched_records() -%}
    select customer_record_id from {{ ref('int_customer_records') }}
    where loaded_at >= {{ mart_watermark() }}
    union
    select customer_record_id from ({{ mart_rekeyed_records() }}) as rekeyed
    union
    select customer_record_id from {{ ref('int_identity_affected_records') }}
    where affected_at > {{ mart_watermark(lookback=false) }}
{%- endmacro %}

{#- First pre-hook of the identity marts (customer_crosswalk, identity_link_evidence) in an incremental
    run: mart_touched_records() into the temporary table mart_touched_records (analyzed_temp_table);
    their delete and their query read it. Inline, the planner judged the records landed since the
    watermark by statistics taken before they landed (3 rows for 10,000 re-read by a rerun within
    the lookback) and recomputed the links' aggregate once per record: customer_crosswalk's query
    took 494 s at 1M records, 0.8 s from the table. -#}
{% macro create_mart_touched_table(rule_hash) -%}
    {%- if mart_incremental(rule_hash) -%}
    {{ analyzed_temp_table('mart_touched_records', mart_touched_records()) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- customer_keys to recompute in a per-customer mart: the keys the touched records carry now and the
    keys they left. -#}
{% macro mart_touched_keys() -%}
    select assignments.customer_key
    from {{ ref('int_customer_key_assignments') }} as assignments
    where assignments.customer_record_id = any(array({{ mart_touched_records() }}))
    union
    select previous_customer_key from ({{ mart_rekeyed_records() }}) as rekeyed
    where previous_customer_key is not null
{%- endmacro %}

{#- Pre-hook of an incremental mart: on a rules change, empty it (the model then selects every row);
    otherwise delete the rows `delete_where` names (the rows about to be recomputed, or those whose
    source record is gone). -#}
{% macro delete_mart_rows(rule_hash, delete_where) -%}
    {%- if is_incremental() and mart_rules_changed(rule_hash) -%}
    delete from {{ this }}
    {%- elif is_incremental() -%}
    delete from {{ this }} where {{ delete_where }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- customer_crosswalk's rows of the touched records (the `where` of its pre-hook's delete, after
    create_mart_touched_table); the source system and id labelled back to the database's collation,
    the crosswalk's key's (see mart_rekeyed_source_ids). -#}
{% macro crosswalk_touched_rows() -%}
    (source_system, source_record_id) in (
        select
            split_part(customer_record_id, ':', 1) collate "default",
            substr(customer_record_id, strpos(customer_record_id, ':') + 1) collate "default"
        from pg_temp.mart_touched_records
    )
{%- endmacro %}

{#- dim_customer's keys to recompute: mart_touched_keys, and the customers whose lifecycle columns
    changed (int_customer_lifecycle's key change log; when it cannot be known, those whose lifecycle
    columns differ from the table's: new orders, tickets, consent, a new as-of day). -#}
{% macro dim_customer_touched_keys() -%}
    {%- set lifecycle_changes = changed_keys_query(['int_customer_lifecycle']) -%}
    {{ mart_touched_keys() }}
    union
    {%- if lifecycle_changes %}
    select key_value from ({{ lifecycle_changes }}) as lifecycle_changes
    {%- else %}
    select lifecycle.customer_key
    from {{ ref('int_customer_lifecycle') }} as lifecycle
    left join {{ this }} as existing on lifecycle.customer_key = existing.customer_key
    where
        (lifecycle.has_marketing_opt_in, lifecycle.first_activity_on, lifecycle.last_activity_on,
            lifecycle.lifecycle_stage)
        is distinct from
        (existing.has_marketing_opt_in, existing.first_activity_on, existing.last_activity_on,
            existing.lifecycle_stage)
    {%- endif %}
{%- endmacro %}

{#- The identity links with either end among the records of CTE `touched` (customer_record_id), each
    once: two index-friendly IN scans instead of one OR. The second leaves out the links the first
    found by an anti-join (NOT IN, a filter of unknown selectivity, led the planner to read every link:
    0.31 s against 0.14 s for 19,254 touched records of 1M). -#}
{% macro mart_touched_edges(touched) -%}
    select * from {{ ref('int_identity_edges') }}
    where record_id_a in (select customer_record_id from {{ touched }})
    union all
    select * from {{ ref('int_identity_edges') }} as links
    where
        record_id_b in (select customer_record_id from {{ touched }})
        and not exists (select from {{ touched }} where {{ touched }}.customer_record_id = links.record_id_a)
{%- endmacro %}
