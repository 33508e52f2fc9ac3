{#- One wide row per customer_key for BI and lookups: profile, orders, value, RFM, service,
    receivables and segment tags. Indexed for lookups by customer_key and by phone. Incremental (sync,
    scoped): a run recomputes the customers whose rows in the inputs changed (their key change
    logs); a new as-of day recomputes every customer. -#}
{%- set inputs = ['dim_customer', 'int_customer_order_stats', 'customer_segments', 'fct_service_tickets',
                  'fct_receivables', 'customer_alerts'] %}
{%- set rule_hash = mart_rule_hash(as_of=true) %}
{%- set scoped = sync_scope_query(inputs, rule_hash) is not none %}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
        indexes=[
            {'columns': ['mobile_e164']},
            {'columns': ['phone_e164']},
        ],
        pre_hook="{{ create_sync_scope(['dim_customer', 'int_customer_order_stats', 'customer_segments',
                  'fct_service_tickets', 'fct_receivables', 'customer_alerts'], mart_rule_hash(as_of=true)) }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(as_of=true)) }}",
            "{{ mark_key_changes_read(['dim_customer', 'int_customer_order_stats', 'customer_segments',
             'fct_service_tickets', 'fct_receivables', 'customer_alerts']) }}",
        ],
    )
}}

with customers as (
    select * from {{ ref('dim_customer') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

segments as (
    select * from {{ ref('customer_segments') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

tickets as (
    select * from {{ ref('fct_service_tickets') }}
    where customer_key is not null
        {{ sync_scope_condition(scoped) }}
),

ticket_stats as (
    select
        customer_key,
        count(*) filter (where is_open)::integer as open_tickets,
        count(*) filter (
            where is_complaint and opened_at::date between {{ as_of_date() }} - 90 and {{ as_of_date() }}
        )::integer as complaints_90d
    from tickets
    group by customer_key
),

receivables as (
    select
        customer_key,
        coalesce(sum(open_amount_cny), 0)::numeric(18, 2) as open_receivables_cny,
        coalesce(sum(open_amount_cny) filter (where days_overdue > 0), 0)::numeric(18, 2) as overdue_receivables_cny
    from {{ ref('fct_receivables') }}
    where customer_key is not null and is_open
        {{ sync_scope_condition(scoped) }}
    group by customer_key
),

alerts as (
    select
        customer_key,
        string_agg(alert_type, ',' order by alert_type) as alert_types
    from {{ ref('customer_alerts') }}
    {{ sync_scope_condition(scoped, 'where') }}
    group by customer_key
),

final as (
    select
        customers.customer_key,
        customers.customer_type,
        customers.customer_name,
        customers.mobile_e164,
        customers.phone_e164,
        customers.email,
        customers.province,
        customers.city,
        customers.source_systems,
        customers.lifecycle_stage,
        customers.has_marketing_opt_in,
        coalesce(order_stats.order_count, 0) as order_count,
        coalesce(order_stats.lifetime_value_cny, 0)::numeric(18, 2) as lifetime_value_cny,
        order_stats.average_order_value_cny,
        order_stats.first_order_date,
        order_stats.last_order_date,
        segments.recency_score,
        segments.frequency_score,
        segments.monetary_score,
        segments.rfm_score,
        segments.segment,
        coalesce(ticket_stats.open_tickets, 0) as open_tickets,
        coalesce(ticket_stats.complaints_90d, 0) as complaints_90d,
        coalesce(receivables.open_receivables_cny, 0)::numeric(18, 2) as open_receivables_cny,
        coalesce(receivables.overdue_receivables_cny, 0)::numeric(18, 2) as overdue_receivables_cny,
        concat_ws(',', segments.segment, customers.lifecycle_stage, alerts.alert_types) as segment_tags,
        customers.first_seen_at,
        customers.last_activity_on,
        customers.last_updated_at
    from customers
    left join order_stats on customers.customer_key = order_stats.customer_key
    left join segments on customers.customer_key = segments.customer_key
    left join ticket_stats on customers.customer_key = ticket_stats.customer_key
    left join receivables on customers.customer_key = receivables.customer_key
    left join alerts on customers.customer_key = alerts.customer_key
)

select * from final
