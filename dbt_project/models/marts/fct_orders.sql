{#- One row per ERP sales order, keyed to its customer through the crosswalk. Incremental on order_id:
    a run rewrites only orders that are new, have a newer landed version, or whose customer_key
    changed (identity resolution merged or split customers); orders gone from staging are deleted. -#}
{{
    config(
        materialized='incremental',
        unique_key='order_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['order_id'], 'unique': true},
            {'columns': ['customer_key']},
        ],
        post_hook=[
            "{% if is_incremental() %}delete from {{ this }} as f where not exists (select 1 from {{ ref('stg_erp__sales_orders') }} as s where s.order_id = f.order_id){% endif %}",
        ],
    )
}}

with orders as (
    select * from {{ ref('stg_erp__sales_orders') }}
),

crosswalk as (
    select * from {{ ref('customer_crosswalk') }}
),

keyed as (
    select
        orders.order_id,
        crosswalk.customer_key,
        orders.customer_id as erp_customer_id,
        orders.order_date,
        coalesce(orders.currency, 'CNY') as currency,
        orders.amount,
        coalesce(orders.order_status, 'unknown') as order_status,
        orders.source_updated_at,
        orders.loaded_at
    from orders
    left join crosswalk
        on crosswalk.source_system = 'erp'
        and crosswalk.source_record_id = orders.customer_id
),

{% if is_incremental() %}
changed as (
    select keyed.*
    from keyed
    left join {{ this }} as existing on keyed.order_id = existing.order_id
    where existing.order_id is null
        or keyed.loaded_at > existing.loaded_at
        or keyed.customer_key is distinct from existing.customer_key
),
{% else %}
changed as (
    select * from keyed
),
{% endif %}

classified as (
    select
        *,
        order_status = 'cancelled' as is_cancelled,
        -- a refund or return is booked as its own order, negative or with a refund status
        (order_status in ('refunded', 'returned', 'refund') or amount < 0) as is_refund,
        {{ to_cny('amount', 'currency') }} as amount_cny
    from changed
),

final as (
    select
        order_id,
        customer_key,
        erp_customer_id,
        order_date,
        date_trunc('month', order_date)::date as order_month,
        currency,
        amount,
        amount_cny,
        (case
            when is_cancelled then 0
            when is_refund then -abs(amount_cny)
            else amount_cny
        end)::numeric(18, 2) as net_amount_cny,
        order_status,
        is_cancelled,
        is_refund,
        source_updated_at,
        loaded_at
    from classified
)

select * from final
