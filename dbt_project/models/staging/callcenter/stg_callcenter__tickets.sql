with source as (
    select * from {{ source('callcenter', 'tickets') }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as ticket_id,
        {{ payload_text('caller_id') }} as caller_id,
        {{ payload_text('category') }} as category,
        lower({{ payload_text('priority') }}) as priority,
        lower({{ payload_text('status') }}) as ticket_status,
        {{ payload_text('subject') }} as subject,
        {{ safe_timestamptz("payload ->> 'opened_at'") }} as opened_at,
        {{ safe_timestamptz("payload ->> 'closed_at'") }} as closed_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
