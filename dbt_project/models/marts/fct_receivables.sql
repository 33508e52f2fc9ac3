{#- One row per ERP invoice: the receivable, what was paid, what is open and how late it is as of
    as_of_date(). Incremental on invoice_id (delete+insert): a run recomputes the invoices landed since
    the last run, those whose order landed (its currency) and those whose customer moved to another
    customer_key; the pre-hook deletes the landed ones first (a tombstone's row stays deleted). The
    rules hash holds fx_to_cny and the as-of date: overdue days move with the date, so a new day
    rebuilds the mart whole. -#}
{%- set rule_hash = mart_rule_hash(['fx_to_cny'], as_of=true) %}
{{
    config(
        materialized='incremental',
        unique_key='invoice_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key']},
        ],
        pre_hook="{{ delete_mart_rows(mart_rule_hash(['fx_to_cny'], as_of=true), 'invoice_id = any(array(' ~ mart_landed_ids(source('erp', 'invoices')) ~ '))') }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(['fx_to_cny'], as_of=true)) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ source('erp', 'invoices') }}
-- depends_on: {{ source('erp', 'sales_orders') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}

{%- if mart_incremental(rule_hash) %}

with changed_invoices as (
    {{ mart_landed_ids(source('erp', 'invoices')) }}
    union
    select invoice_id from {{ this }}
    -- in (...): a hashed lookup per row of this table (= any(array) would scan the array per row)
    where order_id in ({{ mart_landed_ids(source('erp', 'sales_orders')) }})
    union
    select invoice_id from {{ this }}
    where erp_customer_id in ({{ mart_rekeyed_source_ids('erp') }})
),

invoices as (
    -- = any(array(...)) is pushed down into staging's latest-version scan (the raw record id index)
    select * from {{ ref('stg_erp__invoices') }}
    where invoice_id = any(array(select _record_id from changed_invoices))
),

orders as (
    select * from {{ ref('stg_erp__sales_orders') }}
    where order_id = any(array(select order_id from invoices))
),

{%- else %}

with invoices as (
    select * from {{ ref('stg_erp__invoices') }}
),

orders as (
    select * from {{ ref('stg_erp__sales_orders') }}
),

{%- endif %}

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
        coalesce(invoices.amount, 0)::numeric(18, 2) as amount,
        coalesce(invoices.paid_amount, 0)::numeric(18, 2) as paid_amount,
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
