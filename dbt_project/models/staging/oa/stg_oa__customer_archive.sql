{{
    config(
        materialized='incremental',
        unique_key='archive_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['archive_id'], 'unique': true}, {'columns': ['loaded_at']}],
        pre_hook="{{ delete_changed_staging_rows('archive_id', source('oa', 'customer_archive')) }}",
    )
}}

{#- A customer entity's staging is a table kept incrementally (identity resolution reads it by
    changed record): a run recomputes only the records with a version landed since the last one
    (macro staging_changed_records_filter; the pre-hook drops their old rows first). -#}
with source as (
    select * from {{ source('oa', 'customer_archive') }}
    {{- staging_changed_records_filter(source('oa', 'customer_archive')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as archive_id,
        {{ payload_text('customer_name') }} as customer_name,
        {{ normalize_uscc("payload ->> 'credit_code'") }} as uscc,
        {{ payload_text('legal_rep') }} as legal_rep_name,
        {{ normalize_phone_cn("payload ->> 'contact_phone'") }} as phone_any_e164,
        {{ normalize_email("payload ->> 'contact_email'") }} as email,
        {{ payload_text('address') }} as address,
        {{ safe_timestamptz("payload ->> 'archived_at'") }} as archived_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        archive_id,
        -- The archive has no type field: a credit code or an organisation-like name means company.
        {{ infer_customer_type('customer_name', 'uscc') }} as customer_type,
        customer_name,
        {{ company_name_key('customer_name') }} as name_match_key,
        uscc,
        {{ uscc_is_valid('uscc') }} as uscc_is_valid,
        legal_rep_name,
        {{ mobile_only('phone_any_e164') }} as mobile_e164,
        {{ landline_only('phone_any_e164') }} as phone_e164,
        email,
        address,
        archived_at,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
