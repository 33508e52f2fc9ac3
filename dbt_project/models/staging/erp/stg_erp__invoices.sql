{{
    config(
        materialized='incremental',
        unique_key='invoice_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['invoice_id'], 'unique': true}],
        pre_hook="{{ delete_changed_staging_rows('invoice_id', source('erp', 'invoices')) }}",
        post_hook="{{ mark_landing_read() }}",
    )
}}

{#- A table kept incrementally, like the customer entities' staging: the ERP's largest landings
    (several versions per document), which the facts read by id and the tests check, are
    deduplicated once per landed version instead of on every read. A run recomputes only the
    records with a version landed since the last one (the pre-hook drops their old rows first; a
    tombstone's row stays dropped). -#}
with source as (
    select * from {{ source('erp', 'invoices') }}
    {{- staging_changed_records_filter(source('erp', 'invoices')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as invoice_id,
        {{ payload_text('cust_no') }} as customer_id,
        {{ payload_text('order_no') }} as order_id,
        {{ safe_date("payload ->> 'invoice_date'") }} as invoice_date,
        {{ safe_date("payload ->> 'due_date'") }} as due_date,
        {{ safe_date("payload ->> 'paid_date'") }} as paid_date,
        {{ safe_numeric("payload ->> 'amount'") }}::numeric(18, 2) as amount,
        {{ safe_numeric("payload ->> 'paid_amount'") }}::numeric(18, 2) as paid_amount,
        lower({{ payload_text('status') }}) as invoice_status,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
