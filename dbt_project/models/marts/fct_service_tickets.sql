{#- One row per call-center ticket, keyed to the calling customer, with complaint flag and
    resolution time. -#}
{{
    config(
        indexes=[
            {'columns': ['ticket_id'], 'unique': true},
            {'columns': ['customer_key']},
        ],
    )
}}

with tickets as (
    select * from {{ ref('stg_callcenter__tickets') }}
),

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
        end) as resolution_hours,
        tickets.source_updated_at
    from tickets
    left join crosswalk
        on crosswalk.source_system = 'callcenter'
        and crosswalk.source_record_id = tickets.caller_id
)

select * from final
