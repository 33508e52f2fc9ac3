with source as (
    select * from {{ source('oa', 'contract_approvals') }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as approval_id,
        {{ payload_text('archive_id') }} as archive_id,
        {{ payload_text('contract_no') }} as contract_no,
        {{ safe_numeric("payload ->> 'contract_amount'") }}::numeric(18, 2) as contract_amount,
        lower({{ payload_text('status') }}) as approval_status,
        {{ safe_timestamptz("payload ->> 'submitted_at'") }} as submitted_at,
        {{ safe_timestamptz("payload ->> 'decided_at'") }} as decided_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
