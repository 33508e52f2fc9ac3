{#- One row per OA contract approval, keyed to the customer of its archive record. Incremental on
    approval_id (delete+insert): a run recomputes the approvals landed since the last run and those
    whose archive record moved to another customer_key; the pre-hook deletes the landed ones first. -#}
{%- set rule_hash = mart_rule_hash([]) %}
{{
    config(
        materialized='incremental',
        unique_key='approval_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key']},
        ],
        pre_hook="{{ delete_mart_rows(mart_rule_hash([]), 'approval_id = any(array(' ~ mart_landed_ids(source('oa', 'contract_approvals')) ~ '))') }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash([])) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ source('oa', 'contract_approvals') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}

{%- if mart_incremental(rule_hash) %}

with changed as (
    {{ mart_landed_ids(source('oa', 'contract_approvals')) }}
    union
    select approval_id from {{ this }}
    where archive_id in ({{ mart_rekeyed_source_ids('oa') }})
),

approvals as (
    -- = any(array(...)) is pushed down into staging's latest-version scan (the raw record id index)
    select * from {{ ref('stg_oa__contract_approvals') }}
    where approval_id = any(array(select _record_id from changed))
),

{%- else %}

with approvals as (
    select * from {{ ref('stg_oa__contract_approvals') }}
),

{%- endif %}

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
        end)::numeric(12, 2) as decision_hours,
        approvals.source_updated_at
    from approvals
    left join crosswalk
        on crosswalk.source_system = 'oa'
        and crosswalk.source_record_id = approvals.archive_id
)

select * from final
