with source as (
    select * from {{ source('crm', 'contacts') }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as contact_id,
        {{ payload_text('account_id') }} as account_id,
        {{ payload_text('full_name') }} as contact_name,
        {{ payload_text('title') }} as job_title,
        {{ normalize_phone_cn("payload ->> 'mobile'") }} as phone_any_e164,
        {{ normalize_email("payload ->> 'email'") }} as email,
        {{ safe_timestamptz("payload ->> 'created_at'") }} as created_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        contact_id,
        account_id,
        contact_name,
        job_title,
        {{ mobile_only('phone_any_e164') }} as mobile_e164,
        {{ landline_only('phone_any_e164') }} as phone_e164,
        email,
        created_at,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
