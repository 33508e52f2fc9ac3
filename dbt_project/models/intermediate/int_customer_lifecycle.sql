{#- One row per customer_key: the issue-5 additions to dim_customer. Consent (a marketing sign-up,
    withdrawn when any contact the customer has in any system is on ops.contact_suppressions), first
    and last activity over every activity table, and the lifecycle stage:
      lead            known only from marketing leads
      prospect        known to a business system (CRM, ERP, OA, call center) but never ordered
      active_customer last order within lifecycle_active_days (exactly that many days still counts)
      dormant         last order older than that, up to lifecycle_churned_after_days
      churned         no order for longer than lifecycle_churned_after_days
    Incremental (sync, scoped): a run recomputes the customers whose rows in the inputs changed (their
    key change logs; a changed record rewrites its crosswalk row); a new as-of day, other lifecycle
    thresholds or a changed suppression list recompute every customer. -#}
{%- set inputs = ['customer_crosswalk', 'int_customer_order_stats', 'fct_orders', 'fct_service_tickets',
                  'fct_contracts', 'fct_leads'] %}
{%- set rule_hash = mart_rule_hash(['lifecycle_active_days', 'lifecycle_churned_after_days'], as_of=true,
                                   suppressions=true) %}
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
        pre_hook="{{ create_sync_scope(['customer_crosswalk', 'int_customer_order_stats', 'fct_orders',
                  'fct_service_tickets', 'fct_contracts', 'fct_leads'],
                  mart_rule_hash(['lifecycle_active_days', 'lifecycle_churned_after_days'], as_of=true,
                  suppressions=true)) }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(['lifecycle_active_days', 'lifecycle_churned_after_days'],
             as_of=true, suppressions=true)) }}",
            "{{ mark_key_changes_read(['customer_crosswalk', 'int_customer_order_stats', 'fct_orders',
             'fct_service_tickets', 'fct_contracts', 'fct_leads']) }}",
        ],
    )
}}

with crosswalk as not materialized (
    select * from {{ ref('customer_crosswalk') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

order_stats as (
    select * from {{ ref('int_customer_order_stats') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

orders as (
    select * from {{ ref('fct_orders') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

tickets as (
    select * from {{ ref('fct_service_tickets') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

contracts as (
    select * from {{ ref('fct_contracts') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

leads as (
    select * from {{ ref('fct_leads') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

-- not an input of the scope: a changed record rewrites its crosswalk row, which logs its key
customer_records as (
    select * from {{ ref('int_customer_records') }}
),

suppressions as (
    select * from {{ source('ops', 'contact_suppressions') }}
),

-- the records holding a suppressed contact, from the (short) list: index lookups per contact
-- rather than a pass over every record of the customers at hand
suppressed_records as (
    select source_system, source_record_id from customer_records
    where mobile_e164 in (select contact from suppressions)
    union
    select source_system, source_record_id from customer_records
    where phone_e164 in (select contact from suppressions)
    union
    select source_system, source_record_id from customer_records
    where email in (select contact from suppressions)
),

withdrawn as (
    select distinct crosswalk.customer_key
    from suppressed_records
    inner join crosswalk
        on suppressed_records.source_system = crosswalk.source_system
        and suppressed_records.source_record_id = crosswalk.source_record_id
),

customers as (
    select
        crosswalk.customer_key,
        bool_or(crosswalk.source_system = 'marketing')
        and bool_and(withdrawn.customer_key is null) as has_marketing_opt_in,
        bool_and(crosswalk.source_system = 'marketing') as only_marketing
    from crosswalk
    left join withdrawn on crosswalk.customer_key = withdrawn.customer_key
    group by crosswalk.customer_key
),

activity as (
    select customer_key, order_date as activity_on from orders where not is_cancelled
    union all
    select customer_key, opened_at::date from tickets
    union all
    select customer_key, submitted_at::date from contracts
    union all
    select customer_key, created_on from leads
),

activity_span as (
    select
        customer_key,
        min(activity_on) as first_activity_on,
        max(activity_on) as last_activity_on
    from activity
    where customer_key is not null
        and activity_on <= {{ as_of_date() }}
    group by customer_key
),

final as (
    select
        customers.customer_key,
        customers.has_marketing_opt_in,
        activity_span.first_activity_on,
        activity_span.last_activity_on,
        (case
            when order_stats.order_count > 0 and order_stats.days_since_last_order <= {{ var('lifecycle_active_days') }}
                then 'active_customer'
            when order_stats.order_count > 0 and order_stats.days_since_last_order <= {{ var('lifecycle_churned_after_days') }}
                then 'dormant'
            when order_stats.order_count > 0 then 'churned'
            when customers.only_marketing then 'lead'
            else 'prospect'
        end) as lifecycle_stage
    from customers
    left join order_stats on customers.customer_key = order_stats.customer_key
    left join activity_span on customers.customer_key = activity_span.customer_key
)

select * from final
