{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        on_schema_change='fail',
        pre_hook="{{ close_changed_golden_versions() }}",
        post_hook=[
            "{{ golden_history_indexes() }}",
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
            "{{ mark_consumed(ref('int_customer_key_registry'), 'status_changed_at') }}",
            "{{ mark_now('compared') }}",
        ],
    )
}}

{#- Type-2 history of every golden value and where it came from: one row per customer_key,
    attribute and version. A version opens (dbt_valid_from) when the value, its source system or its
    source record changes, and closes (dbt_valid_to) then, or when the customer or attribute loses
    its golden value (merged into another customer, retired, erased). The columns are a dbt
    snapshot's (check strategy on value, source_system, source_record_id; hard deletes
    invalidated), which kept this history before: incremental, it compares only the customers whose
    golden values were recomputed since its last run (macros/golden_history.sql). The pre-hook
    closes the versions that changed; this query opens the new ones. -#}
{%- set by_keys = golden_history_by_touched_keys() %}

with
{%- if by_keys %}
touched_keys as (
    {{ golden_touched_keys() }}
),
{%- endif %}

golden as (
    select
        customer_key,
        attribute,
        value,
        source_system,
        source_record_id,
        source_updated_at,
        strategy
    from {{ ref('int_golden_attributes') }}
    where {{ golden_history_scope(by_keys, keys='select customer_key from touched_keys') }}
),

{%- if is_incremental() %}

open_versions as (
    select
        customer_key,
        attribute,
        value,
        source_system,
        source_record_id
    from {{ this }}
    where
        dbt_valid_to is null
        and {{ golden_history_scope(by_keys, keys='select customer_key from touched_keys') }}
),
{%- endif %}

new_versions as (
    select golden.*
    from golden
    {%- if is_incremental() %}
    where not exists (
        select 1
        from open_versions
        where {{ golden_history_same_version('open_versions', 'golden') }}
    )
    {%- endif %}
),

final as (
    select
        customer_key,
        attribute,
        value,
        source_system,
        source_record_id,
        source_updated_at,
        strategy,
        md5(customer_key || '|' || attribute || '|' || ({{ snapshot_get_time() }})::text) as dbt_scd_id,
        {{ snapshot_get_time() }} as dbt_updated_at,
        {{ snapshot_get_time() }} as dbt_valid_from,
        null::timestamp as dbt_valid_to
    from new_versions
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}
-- depends_on: {{ ref('int_customer_key_registry') }}
