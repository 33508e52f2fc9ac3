{#- One row per calendar month with orders (up to as_of_date): orders, buyers, new buyers, sales,
    refunds and average order value in CNY. Sums int_customer_monthly_orders (kept per customer by
    delta) and the orders of no known customer, rather than reading every order. -#}

with customer_months as (
    select * from {{ ref('int_customer_monthly_orders') }}
),

-- orders of no known customer count as orders and sales, not as buyers
unkeyed_orders as (
    select * from {{ ref('fct_orders') }}
    where customer_key is null
        and not is_cancelled
        and order_date <= {{ as_of_date() }}
),

months as (
    select
        order_month,
        orders,
        (orders > 0)::integer as ordering_customers,
        (orders > 0 and is_first_order_month)::integer as new_customers,
        gross_sales_cny,
        refunds_cny
    from customer_months
    union all
    select
        order_month,
        (not is_refund)::integer,
        0,
        0,
        (case when not is_refund then net_amount_cny else 0 end),
        (case when is_refund then -net_amount_cny else 0 end)
    from unkeyed_orders
),

per_month as (
    select
        order_month,
        sum(orders)::integer as orders,
        sum(ordering_customers)::integer as ordering_customers,
        sum(new_customers)::integer as new_customers,
        sum(gross_sales_cny)::numeric(18, 2) as gross_sales_cny,
        sum(refunds_cny)::numeric(18, 2) as refunds_cny
    from months
    group by order_month
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
