{#- One row per customer_key whose complaints in the last complaint_window_days are well above the
    customer's own baseline: at least complaint_spike_min_count complaints, and more than
    complaint_spike_ratio times the baseline rate (complaints in the complaint_baseline_days before the
    window, scaled to the window's length). The window includes as_of_date and the day
    complaint_window_days - 1 before it. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key='customer_key',
        on_schema_change='fail',
    )
}}

with complaints as (
    select
        customer_key,
        opened_at::date as opened_on
    from {{ ref('fct_service_tickets') }}
    where is_complaint
        and customer_key is not null
),

windows as (
    select
        {{ as_of_date() }} as as_of_date,
        {{ as_of_date() }} - {{ var('complaint_window_days') }} as window_start_excl,
        {{ as_of_date() }} - {{ var('complaint_window_days') }} - {{ var('complaint_baseline_days') }}
            as baseline_start_excl
),

counted as (
    select
        complaints.customer_key,
        count(*) filter (
            where complaints.opened_on > windows.window_start_excl and complaints.opened_on <= windows.as_of_date
        )::integer as complaints_in_window,
        count(*) filter (
            where complaints.opened_on > windows.baseline_start_excl
                and complaints.opened_on <= windows.window_start_excl
        )::integer as complaints_in_baseline,
        max(windows.as_of_date) as as_of_date
    from complaints
    cross join windows
    group by complaints.customer_key
),

final as (
    select
        customer_key,
        complaints_in_window,
        complaints_in_baseline,
        round(
            complaints_in_baseline * {{ var('complaint_window_days') }}::numeric / {{ var('complaint_baseline_days') }}, 2
        )::numeric(12, 2) as baseline_per_window,
        as_of_date
    from counted
    where complaints_in_window >= {{ var('complaint_spike_min_count') }}
        and complaints_in_window > {{ var('complaint_spike_ratio') }}
            * complaints_in_baseline * {{ var('complaint_window_days') }}::numeric / {{ var('complaint_baseline_days') }}
)

select * from final
