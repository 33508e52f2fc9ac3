{#- The history of the golden values (models/history/snap_customer_golden_provenance): type-2
    versions kept incrementally. A dbt snapshot (check strategy, hard deletes) compares every
    current value with every open version on each run: 47 s of a 184 s incremental build at 1M
    customers. This model compares only the customers whose golden values were recomputed since it
    last ran (golden_touched_keys: the same change logs int_golden_attributes consumes), and
    everything when int_golden_attributes was rebuilt whole since then (first build, identity
    configuration change, --full-refresh) or when it has never compared (the first run on a
    warehouse whose history a dbt snapshot kept). History is never rebuilt (full_refresh=false). -#}

{#- int_golden_attributes' post-hook, first of its hooks: the time it was rebuilt whole (not from
    its change logs), for the history to compare everything after it. -#}
{% macro mark_golden_rebuilt() -%}
    {%- if not identity_incremental() -%}
    {{ mark_now('rebuilt') }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: this model's mark '<model> <- kind' in ops.incremental_progress, set to now()
    ('rebuilt' above; the history's 'compared', which golden_history_by_touched_keys reads). -#}
{% macro mark_now(kind) -%}
    insert into ops.incremental_progress (consumer, consumed_through)
    values ('{{ this.identifier }} <- {{ kind }}', now())
    on conflict (consumer) do update
    set consumed_through = excluded.consumed_through, updated_at = now()
{%- endmacro %}

{#- True when this run may compare only the touched customers: the model exists, it compared
    before, and int_golden_attributes was not rebuilt whole since. Also used by
    customer_golden_provenance, which follows int_golden_attributes the same way. -#}
{% macro golden_history_by_touched_keys() -%}
    {%- if not execute or not is_incremental() or not progress_table_exists() -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- set query -%}
        select coalesce(
            (select consumed_through from ops.incremental_progress
             where consumer = '{{ this.identifier }} <- compared')
            > coalesce(
                (select consumed_through from ops.incremental_progress
                 where consumer = '{{ ref("int_golden_attributes").identifier }} <- rebuilt'),
                '-infinity'
            ),
            false
        )
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}

{#- The rows compared this run: those of the touched customers (`keys`: a CTE or subquery of
    customer_key), or all. -#}
{% macro golden_history_scope(by_touched_keys, column='customer_key', keys=none) -%}
    {%- if by_touched_keys -%}
    {{ column }} = any(array({{ keys or golden_touched_keys() }}))
    {%- else -%}
    true
    {%- endif -%}
{%- endmacro %}

{#- The values a version is checked on (a change in any of them is a new version). -#}
{% macro golden_history_same_version(a, b) -%}
    {{ a }}.customer_key = {{ b }}.customer_key
    and {{ a }}.attribute = {{ b }}.attribute
    and {{ a }}.value is not distinct from {{ b }}.value
    and {{ a }}.source_system is not distinct from {{ b }}.source_system
    and {{ a }}.source_record_id is not distinct from {{ b }}.source_record_id
{%- endmacro %}

{#- Pre-hook (in the model's transaction, so now() is the same instant as the versions it opens):
    close every open version in scope whose value, source or record is no longer the golden one,
    or whose customer or attribute has no golden value any more (merged away, retired, erased). -#}
{% macro close_changed_golden_versions() -%}
    {%- if is_incremental() -%}
    {%- set by_keys = golden_history_by_touched_keys() -%}
    update {{ this }} as h
    set dbt_valid_to = {{ snapshot_get_time() }}
    where
        h.dbt_valid_to is null
        and {{ golden_history_scope(by_keys, 'h.customer_key') }}
        and not exists (
            select 1
            from {{ ref('int_golden_attributes') }} as g
            where {{ golden_history_same_version('g', 'h') }}
        )
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook of customer_golden_provenance: delete the rows this run replaces (the touched
    customers', or all after int_golden_attributes was rebuilt whole). -#}
{% macro delete_golden_provenance_in_scope() -%}
    {%- if is_incremental() -%}
    delete from {{ this }} where {{ golden_history_scope(golden_history_by_touched_keys()) }}
    {%- else -%}
    select 1
    {%- endif -%}
{%- endmacro %}

{#- Post-hook: the history's uniqueness, as indexes (created here too, not only with the table, so
    a history table a dbt snapshot made gets them): one row per customer, attribute and version
    start, and at most one open version per customer and attribute. -#}
{% macro golden_history_indexes() -%}
    create unique index if not exists snap_customer_golden_provenance_version_uq
        on {{ this }} (customer_key, attribute, dbt_valid_from);
    create unique index if not exists snap_customer_golden_provenance_open_uq
        on {{ this }} (customer_key, attribute) where dbt_valid_to is null
{%- endmacro %}
