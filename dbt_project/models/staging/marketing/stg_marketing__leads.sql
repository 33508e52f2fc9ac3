{{
    config(
        materialized='incremental',
        unique_key='lead_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['lead_id'], 'unique': true}, {'columns': ['loaded_at']}],
        pre_hook="{{ delete_changed_staging_rows('lead_id', source('marketing', 'leads')) }}",
    )
}}

{#- A customer entity's staging is a table kept incrementally (identity resolution reads it by
    changed record): a run recomputes only the records with a version landed since the last one
    (macro staging_changed_records_filter; the pre-hook drops their old rows first). -#}
with source as (
    select * from {{ source('marketing', 'leads') }}
    {{- staging_changed_records_filter(source('marketing', 'leads')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as lead_id,
        {{ payload_text('lead_name') }} as lead_name,
        {{ payload_text('company_name') }} as company_name,
        {{ normalize_phone_cn("payload ->> 'mobile'") }} as phone_any_e164,
        {{ normalize_email("payload ->> 'email'") }} as email,
        {{ normalize_region("payload ->> 'province'") }} as province,
        {{ normalize_region("payload ->> 'city'") }} as city,
        {{ payload_text('campaign_code') }} as campaign_code,
        {{ payload_text('lead_source') }} as lead_source,
        {{ safe_date("payload ->> 'created_at'") }} as created_on,
        {{ payload_text('source_file') }} as source_file,
        {{ safe_numeric("payload ->> 'source_row'") }}::integer as source_row,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        lead_id,
        -- A lead that names a company is a company lead; the person is its contact.
        case when company_name is not null then 'company' else 'person' end as customer_type,
        lead_name,
        company_name,
        {{ company_name_key('company_name') }} as name_match_key,
        {{ mobile_only('phone_any_e164') }} as mobile_e164,
        {{ landline_only('phone_any_e164') }} as phone_e164,
        email,
        province,
        city,
        campaign_code,
        lead_source,
        source_file,
        source_row,
        created_on,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
