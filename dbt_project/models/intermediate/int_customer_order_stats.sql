{#- One row per customer_key with at least one order dated on or before as_of_date(): counts, value,
    first / last order and recency. Cancelled orders count for nothing; a refund subtracts its value
    and is not an order. Incremental (sync, scoped): a run recomputes the customers whose orders
    changed (fct_orders' key change log); a new as-of day recomputes every customer. -#}
{%- set inputs = ['fct_orders'] %}
{%- set rule_hash = mart_rule_hash(as_of=true) %}
{%- set scoped = sync_scope_query(inputs, rule_hash) is not none %}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key'], 'unique': true},
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
        and order_date <= {{ as_of_date() }}
        {{ sync_scope_condition(scoped) }}
),

per_customer as (
    select
        customer_key,
        count(*) filter (where not is_cancelled and not is_refund)::integer as order_count,
        count(*) filter (where is_refund)::integer as refund_count,
        coalesce(sum(net_amount_cny) filter (where not is_cancelled and not is_refund), 0)::numeric(18, 2)
            as gross_sales_cny,
        coalesce(sum(net_amount_cny), 0)::numeric(18, 2) as lifetime_value_cny,
        min(order_date) filter (where not is_cancelled and not is_refund) as first_order_date,
        max(order_date) filter (where not is_cancelled and not is_refund) as last_order_date
    from orders
    group by customer_key
),

final as (
    select
        customer_key,
        order_count,
        refund_count,
        gross_sales_cny,
        lifetime_value_cny,
        (case when order_count > 0 then round(gross_sales_cny / order_count, 2) end)::numeric(18, 2)
            as average_order_value_cny,
        first_order_date,
        last_order_date,
        {{ as_of_date() }} - last_order_date as days_since_last_order
    from per_customer
)

select * from final
