{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['order_id'], 'unique': true}],
        pre_hook="{{ delete_changed_staging_rows('order_id', source('erp', 'sales_orders')) }}",
        post_hook="{{ mark_landing_read() }}",
    )
}}

{#- A table kept incrementally, like the customer entities' staging: the ERP's largest landings
    (several versions per document), which the facts read by id and the tests check, are
    deduplicated once per landed version instead of on every read. A run recomputes only the
    records with a version landed since the last one (the pre-hook drops their old rows first; a
    tombstone's row stays dropped). -#}
with source as (
    select * from {{ source('erp', 'sales_orders') }}
    {{- staging_changed_records_filter(source('erp', 'sales_orders')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as order_id,
        {{ payload_text('cust_no') }} as customer_id,
        {{ safe_date("payload ->> 'order_date'") }} as order_date,
        {{ safe_numeric("payload ->> 'amount'") }}::numeric(18, 2) as amount,
        upper({{ payload_text('currency') }}) as currency,
        lower({{ payload_text('status') }}) as order_status,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
