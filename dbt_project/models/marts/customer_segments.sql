{#- One row per customer_key: RFM scores (quintiles among customers with orders, 5 = best) and the
    segment from value and recency:
      vip       lifetime value >= segment_vip_min_lifetime_value and an order within lifecycle_active_days
      win_back  (挽回) ordered before, but not for more than segment_winback_after_days
      regular   every other customer with orders
      no_orders never ordered (leads and prospects) -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
    )
}}

with customers as (
    select customer_key from {{ ref('int_customer_lifecycle') }}
),

order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
    where order_count > 0
),

scored as (
    select
        customer_key,
        ntile(5) over (order by last_order_date, customer_key)::integer as recency_score,
        ntile(5) over (order by order_count, customer_key)::integer as frequency_score,
        ntile(5) over (order by lifetime_value_cny, customer_key)::integer as monetary_score
    from order_stats
),

final as (
    select
        customers.customer_key,
        (case
            when order_stats.customer_key is null then 'no_orders'
            when order_stats.days_since_last_order > {{ var('segment_winback_after_days') }} then 'win_back'
            when order_stats.lifetime_value_cny >= {{ var('segment_vip_min_lifetime_value') }}
                and order_stats.days_since_last_order <= {{ var('lifecycle_active_days') }} then 'vip'
            else 'regular'
        end) as segment,
        scored.recency_score,
        scored.frequency_score,
        scored.monetary_score,
        scored.recency_score::text || scored.frequency_score::text || scored.monetary_score::text as rfm_score,
        order_stats.lifetime_value_cny,
        order_stats.days_since_last_order
    from customers
    left join order_stats on customers.customer_key = order_stats.customer_key
    left join scored on customers.customer_key = scored.customer_key
)

select * from final
