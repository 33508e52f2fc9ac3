{#- One row per open receivable (invoice) that is overdue or due within payment_reminder_days_ahead
    days of as_of_date (due today counts as due soon). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='invoice_id',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key']},
        ],
    )
}}

with receivables as (
    select * from {{ ref('fct_receivables') }}
),

final as (
    select
        invoice_id,
        customer_key,
        order_id,
        due_date,
        open_amount,
        open_amount_cny,
        (case when days_overdue > 0 then 'overdue' else 'due_soon' end) as reminder_type,
        days_overdue,
        days_until_due,
        as_of_date
    from receivables
    where is_open
        and due_date is not null
        and days_until_due <= {{ var('payment_reminder_days_ahead') }}
)

select * from final
