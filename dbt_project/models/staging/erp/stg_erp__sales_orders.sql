with source as (
    select * from {{ source('erp', 'sales_orders') }}
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
