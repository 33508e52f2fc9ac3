{#- One row per calendar month with orders (up to as_of_date): orders, buyers, new buyers, sales,
    refunds and average order value in CNY. -#}

with orders as (
    select * from {{ ref('fct_orders') }}
    where not is_cancelled
        and order_date <= {{ as_of_date() }}
),

first_orders as (
    select customer_key, min(order_month) as first_order_month
    from orders
    where not is_refund and customer_key is not null
    group by customer_key
),

per_month as (
    select
        orders.order_month,
        count(*) filter (where not orders.is_refund)::integer as orders,
        count(distinct orders.customer_key) filter (where not orders.is_refund)::integer as ordering_customers,
        count(distinct orders.customer_key) filter (
            where not orders.is_refund and first_orders.first_order_month = orders.order_month
        )::integer as new_customers,
        coalesce(sum(orders.net_amount_cny) filter (where not orders.is_refund), 0)::numeric(18, 2) as gross_sales_cny,
        coalesce(-sum(orders.net_amount_cny) filter (where orders.is_refund), 0)::numeric(18, 2) as refunds_cny
    from orders
    left join first_orders on orders.customer_key = first_orders.customer_key
    group by orders.order_month
),

final as (
    select
        order_month,
        orders,
        ordering_customers,
        new_customers,
        gross_sales_cny,
        refunds_cny,
        (gross_sales_cny - refunds_cny)::numeric(18, 2) as net_sales_cny,
        (case when orders > 0 then round(gross_sales_cny / orders, 2) end)::numeric(18, 2) as average_order_value_cny
    from per_month
)

select * from final
