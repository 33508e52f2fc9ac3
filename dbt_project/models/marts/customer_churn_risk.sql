{#- One row per customer_key at churn risk: a repeat buyer (at least churn_risk_min_orders orders)
    with no order for more than churn_risk_days, not yet churned (lifecycle_churned_after_days). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key'], 'unique': true},
        ],
    )
}}

with order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
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
