with source as (
    select * from {{ source('erp', 'invoices') }}
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
