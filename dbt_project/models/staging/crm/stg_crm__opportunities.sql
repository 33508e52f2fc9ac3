with source as (
    select * from {{ source('crm', 'opportunities') }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as opportunity_id,
        {{ payload_text('account_id') }} as account_id,
        {{ payload_text('name') }} as opportunity_name,
        lower({{ payload_text('stage') }}) as stage,
        {{ safe_numeric("payload ->> 'amount'") }}::numeric(18, 2) as amount,
        {{ safe_date("payload ->> 'expected_close_date'") }} as expected_close_date,
        {{ safe_timestamptz("payload ->> 'created_at'") }} as created_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
