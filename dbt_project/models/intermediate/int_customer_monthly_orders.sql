{#- One row per customer_key and calendar month with a non-cancelled order dated on or before
    as_of_date: that month's orders, sales and refunds in CNY, and whether it is the customer's first
    month with an order. monthly_order_trends sums it. Incremental (sync, scoped): a run recomputes
    the customers whose orders changed (fct_orders' key change log), all their months at once (the
    first month is the customer's); a new as-of day recomputes every customer. -#}
{%- set inputs = ['fct_orders'] %}
{%- set rule_hash = mart_rule_hash(as_of=true) %}
{%- set scoped = sync_scope_query(inputs, rule_hash) is not none %}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key=['customer_key', 'order_month'],
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key', 'order_month'], 'unique': true},
        ],
        pre_hook="{{ create_sync_scope(['fct_orders'], mart_rule_hash(as_of=true)) }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(as_of=true)) }}",
            "{{ mark_key_changes_read(['fct_orders']) }}",
        ],
    )
}}

with orders as (
    select * from {{ ref('fct_orders') }}
    where customer_key is not null
        and not is_cancelled
        and order_date <= {{ as_of_date() }}
        {{ sync_scope_condition(scoped) }}
),

per_month as (
    select
        customer_key,
        order_month,
        count(*) filter (where not is_refund)::integer as orders,
        coalesce(sum(net_amount_cny) filter (where not is_refund), 0)::numeric(18, 2) as gross_sales_cny,
        coalesce(-sum(net_amount_cny) filter (where is_refund), 0)::numeric(18, 2) as refunds_cny
    from orders
    group by customer_key, order_month
),

final as (
    select
        customer_key,
        order_month,
        orders,
        gross_sales_cny,
        refunds_cny,
        -- the first month with an order that is not a refund (a refund alone makes no buyer)
        coalesce(
            order_month = min(order_month) filter (where orders > 0) over (partition by customer_key), false
        ) as is_first_order_month
    from per_month
)

select * from final
