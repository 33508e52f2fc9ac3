with source as (
    select * from {{ source('callcenter', 'contact_changes') }}
),

latest as (
    {{ latest_record_version('source') }}
),

final as (
    select
        _record_id as change_id,
        {{ payload_text('caller_id') }} as caller_id,
        {{ payload_text('agent_id') }} as agent_id,
        lower({{ payload_text('field') }}) as changed_field,
        {{ payload_text('old_value') }} as old_value,
        {{ payload_text('new_value') }} as new_value,
        _source_updated_at as changed_at,
        _loaded_at as loaded_at
    from latest
)

select * from final
