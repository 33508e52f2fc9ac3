{#- One row per call-center ticket, keyed to the calling customer, with complaint flag and
    resolution time. Incremental on ticket_id (delete+insert): a run recomputes the tickets landed
    since the last run and those whose caller moved to another customer_key; the pre-hook deletes the
    landed ones first (a tombstone's row stays deleted). -#}
{%- set rule_hash = mart_rule_hash([]) %}
{{
    config(
        materialized='incremental',
        unique_key='ticket_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key']},
        ],
        pre_hook="{{ delete_mart_rows(mart_rule_hash([]), 'ticket_id = any(array(' ~ mart_landed_ids(source('callcenter', 'tickets')) ~ '))') }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash([])) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ source('callcenter', 'tickets') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}

{%- if mart_incremental(rule_hash) %}

with changed as (
    {{ mart_landed_ids(source('callcenter', 'tickets')) }}
    union
    select ticket_id from {{ this }}
    where caller_id in ({{ mart_rekeyed_source_ids('callcenter') }})
),

tickets as (
    -- = any(array(...)) is pushed down into staging's latest-version scan (the raw record id index)
    select * from {{ ref('stg_callcenter__tickets') }}
    where ticket_id = any(array(select _record_id from changed))
),

{%- else %}

with tickets as (
    select * from {{ ref('stg_callcenter__tickets') }}
),

{%- endif %}

crosswalk as (
    select * from {{ ref('customer_crosswalk') }}
),

final as (
    select
        tickets.ticket_id,
        crosswalk.customer_key,
        tickets.caller_id,
        coalesce(tickets.category, 'unknown') as category,
        {{ is_complaint('tickets.category') }} as is_complaint,
        tickets.priority,
        coalesce(tickets.ticket_status, 'unknown') as ticket_status,
        (tickets.closed_at is null and coalesce(tickets.ticket_status, 'open') not in ('closed', 'resolved', 'cancelled'))
            as is_open,
        tickets.subject,
        tickets.opened_at,
        tickets.closed_at,
        (case
            when tickets.closed_at >= tickets.opened_at
            then round((extract(epoch from tickets.closed_at - tickets.opened_at) / 3600)::numeric, 2)
        end)::numeric(12, 2) as resolution_hours,
        tickets.source_updated_at
    from tickets
    left join crosswalk
        on crosswalk.source_system = 'callcenter'
        and crosswalk.source_record_id = tickets.caller_id
)

select * from final
