{#- One row per ERP invoice: the receivable, what was paid, what is open and how late it is as of
    as_of_date(). Rebuilt every run (overdue days move with the date). -#}
{{
    config(
        indexes=[
            {'columns': ['invoice_id'], 'unique': true},
            {'columns': ['customer_key']},
        ],
    )
}}

with invoices as (
    select * from {{ ref('stg_erp__invoices') }}
),

orders as (
    select * from {{ ref('stg_erp__sales_orders') }}
),

crosswalk as (
    select * from {{ ref('customer_crosswalk') }}
),

keyed as (
    select
        invoices.invoice_id,
        crosswalk.customer_key,
        invoices.order_id,
        invoices.customer_id as erp_customer_id,
        invoices.invoice_date,
        invoices.due_date,
        invoices.paid_date,
        coalesce(orders.currency, 'CNY') as currency,
        coalesce(invoices.amount, 0) as amount,
        coalesce(invoices.paid_amount, 0) as paid_amount,
        invoices.invoice_status,
        invoices.source_updated_at
    from invoices
    left join orders on invoices.order_id = orders.order_id
    left join crosswalk
        on crosswalk.source_system = 'erp'
        and crosswalk.source_record_id = invoices.customer_id
),

measured as (
    select
        *,
        greatest(amount - paid_amount, 0)::numeric(18, 2) as open_amount,
        {{ as_of_date() }} as as_of_date
    from keyed
),

final as (
    select
        invoice_id,
        customer_key,
        order_id,
        erp_customer_id,
        invoice_date,
        due_date,
        paid_date,
        currency,
        amount,
        paid_amount,
        open_amount,
        {{ to_cny('open_amount', 'currency') }} as open_amount_cny,
        coalesce(invoice_status, 'unknown') as invoice_status,
        open_amount > 0 as is_open,
        (case when open_amount > 0 and due_date < as_of_date then as_of_date - due_date else 0 end)
            as days_overdue,
        (case when open_amount > 0 then due_date - as_of_date end) as days_until_due,
        (case when open_amount = 0 and paid_date is not null then paid_date - due_date end)
            as days_paid_after_due,
        as_of_date,
        source_updated_at
    from measured
)

select * from final
