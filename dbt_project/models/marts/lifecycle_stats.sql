{#- One row per lifecycle stage (all five, zero when empty): customers, share and value. -#}

with stages as (
    select stage, stage_order
    from (values
        ('lead', 1), ('prospect', 2), ('active_customer', 3), ('dormant', 4), ('churned', 5)
    ) as s (stage, stage_order)
),

lifecycle as (
    select * from {{ ref('int_customer_lifecycle') }}
),

order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
),

per_stage as (
    select
        lifecycle.lifecycle_stage,
        count(*)::integer as customers,
        coalesce(sum(order_stats.lifetime_value_cny), 0)::numeric(18, 2) as lifetime_value_cny
    from lifecycle
    left join order_stats on lifecycle.customer_key = order_stats.customer_key
    group by lifecycle.lifecycle_stage
),

final as (
    select
        stages.stage as lifecycle_stage,
        stages.stage_order,
        coalesce(per_stage.customers, 0) as customers,
        round(
            coalesce(per_stage.customers, 0)::numeric / nullif(sum(per_stage.customers) over (), 0), 4
        ) as customer_share,
        coalesce(per_stage.lifetime_value_cny, 0)::numeric(18, 2) as lifetime_value_cny,
        {{ as_of_date() }} as as_of_date
    from stages
    left join per_stage on stages.stage = per_stage.lifecycle_stage
)

select * from final
