{#- One row per customer_key and alert_type: every customer that needs attention on as_of_date and why.
    churn_risk (customer_churn_risk), complaint_spike (customer_complaint_anomalies) and payment_due
    (payment_reminders, summed per customer). The push and alerting work reads this table.
    Incremental (sync, scoped): a run recomputes the customers whose rows in the three inputs changed
    (their key change logs); a new as-of day or other thresholds recompute every customer. -#}
{%- set inputs = ['customer_churn_risk', 'customer_complaint_anomalies', 'payment_reminders'] %}
{%- set rule_hash = mart_rule_hash(['segment_vip_min_lifetime_value', 'complaint_window_days'], as_of=true) %}
{%- set scoped = sync_scope_query(inputs, rule_hash) is not none %}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key=['customer_key', 'alert_type'],
        on_schema_change='fail',
        pre_hook="{{ create_sync_scope(['customer_churn_risk', 'customer_complaint_anomalies', 'payment_reminders'],
                  mart_rule_hash(['segment_vip_min_lifetime_value', 'complaint_window_days'], as_of=true)) }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(['segment_vip_min_lifetime_value', 'complaint_window_days'],
             as_of=true)) }}",
            "{{ mark_key_changes_read(['customer_churn_risk', 'customer_complaint_anomalies',
             'payment_reminders']) }}",
        ],
    )
}}

with churn_risk as (
    select * from {{ ref('customer_churn_risk') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

complaint_spikes as (
    select * from {{ ref('customer_complaint_anomalies') }}
    {{ sync_scope_condition(scoped, 'where') }}
),

reminders as (
    select * from {{ ref('payment_reminders') }}
    where customer_key is not null
        {{ sync_scope_condition(scoped) }}
),

payment_due as (
    select
        customer_key,
        count(*)::integer as invoices,
        count(*) filter (where reminder_type = 'overdue')::integer as overdue_invoices,
        sum(open_amount_cny)::numeric(18, 2) as open_amount_cny,
        max(days_overdue) as max_days_overdue,
        min(days_until_due) as soonest_days_until_due
    from reminders
    group by customer_key
),

alerts as (
    select
        customer_key,
        'churn_risk' as alert_type,
        (case when lifetime_value_cny >= {{ var('segment_vip_min_lifetime_value') }} then 'high' else 'medium' end)
            as severity,
        format(
            '已 %s 天未下单（此前 %s 单，累计 %s 元）',
            days_since_last_order, order_count, {{ amount_text('lifetime_value_cny') }}
        ) as reason,
        days_since_last_order::numeric as metric_value
    from churn_risk
    union all
    select
        customer_key,
        'complaint_spike',
        'high',
        format(
            '近 %s 天投诉 %s 次，基线每 %s 天 %s 次',
            {{ var('complaint_window_days') }}, complaints_in_window, {{ var('complaint_window_days') }},
            baseline_per_window
        ),
        complaints_in_window::numeric
    from complaint_spikes
    union all
    select
        customer_key,
        'payment_due',
        (case when overdue_invoices > 0 then 'high' else 'low' end),
        (case
            when overdue_invoices > 0
                then format(
                    '%s 张发票逾期，最长 %s 天，未收 %s 元',
                    overdue_invoices, max_days_overdue, {{ amount_text('open_amount_cny') }}
                )
            else format(
                '%s 张发票 %s 天内到期，未收 %s 元',
                invoices, soonest_days_until_due, {{ amount_text('open_amount_cny') }}
            )
        end),
        open_amount_cny
    from payment_due
),

final as (
    select
        customer_key,
        alert_type,
        severity,
        reason,
        metric_value::numeric(18, 2) as metric_value,
        {{ as_of_date() }} as alert_date
    from alerts
)

select * from final
