{#- One row per OA contract approval, keyed to the customer of its archive record. -#}
{{
    config(
        indexes=[
            {'columns': ['approval_id'], 'unique': true},
            {'columns': ['customer_key']},
        ],
    )
}}

with approvals as (
    select * from {{ ref('stg_oa__contract_approvals') }}
),

crosswalk as (
    select * from {{ ref('customer_crosswalk') }}
),

final as (
    select
        approvals.approval_id,
        crosswalk.customer_key,
        approvals.archive_id,
        approvals.contract_no,
        approvals.contract_amount,
        coalesce(approvals.approval_status, 'unknown') as approval_status,
        coalesce(approvals.approval_status = 'approved', false) as is_approved,
        approvals.submitted_at,
        approvals.decided_at,
        (case
            when approvals.decided_at >= approvals.submitted_at
            then round((extract(epoch from approvals.decided_at - approvals.submitted_at) / 3600)::numeric, 2)
        end) as decision_hours,
        approvals.source_updated_at
    from approvals
    left join crosswalk
        on crosswalk.source_system = 'oa'
        and crosswalk.source_record_id = approvals.archive_id
)

select * from final
