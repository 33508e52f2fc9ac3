{#- One row per customer_key at churn risk: a repeat buyer (at least churn_risk_min_orders orders)
    with no order for more than churn_risk_days, not yet churned (lifecycle_churned_after_days).
    Incremental (sync, scoped): a run recomputes the customers whose order statistics changed (its
    key change log); a new as-of day or other thresholds recompute every customer. -#}
{%- set inputs = ['int_customer_order_stats'] %}
{%- set rule_hash = mart_rule_hash(['churn_risk_min_orders', 'churn_risk_days', 'lifecycle_churned_after_days'],
                                   as_of=true) %}
{%- set scoped = sync_scope_query(inputs, rule_hash) is not none %}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
        pre_hook="{{ create_sync_scope(['int_customer_order_stats'], mart_rule_hash(['churn_risk_min_orders',
                  'churn_risk_days', 'lifecycle_churned_after_days'], as_of=true)) }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(['churn_risk_min_orders', 'churn_risk_days',
             'lifecycle_churned_after_days'], as_of=true)) }}",
            "{{ mark_key_changes_read(['int_customer_order_stats']) }}",
        ],
    )
}}

with order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

final as (
    select
        customer_key,
        order_count,
        lifetime_value_cny,
        last_order_date,
        days_since_last_order,
        {{ as_of_date() }} as as_of_date
    from order_stats
    where order_count >= {{ var('churn_risk_min_orders') }}
        and days_since_last_order > {{ var('churn_risk_days') }}
        and days_since_last_order <= {{ var('lifecycle_churned_after_days') }}
)

select * from final
