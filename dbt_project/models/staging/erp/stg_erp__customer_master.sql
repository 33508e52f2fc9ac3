{{
    config(
        materialized='incremental',
        unique_key='customer_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_id'], 'unique': true}, {'columns': ['loaded_at']}],
        pre_hook="{{ delete_changed_staging_rows('customer_id', source('erp', 'customer_master')) }}",
    )
}}

{#- A customer entity's staging is a table kept incrementally (identity resolution reads it by
    changed record): a run recomputes only the records with a version landed since the last one
    (macro staging_changed_records_filter; the pre-hook drops their old rows first). -#}
with source as (
    select * from {{ source('erp', 'customer_master') }}
    {{- staging_changed_records_filter(source('erp', 'customer_master')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as customer_id,
        upper({{ payload_text('cust_type') }}) as cust_type_raw,
        {{ payload_text('cust_name') }} as customer_name,
        {{ normalize_uscc("payload ->> 'tax_no'") }} as uscc,
        {#- the resident ID number itself never lands: extraction hashed it (include/identity/pii.py) #}
        payload ->> 'id_card_no_sha256' as id_card_sha256,
        coalesce((payload ->> 'id_card_no_valid')::boolean, false) as id_card_is_valid,
        {{ payload_text('contact_person') }} as contact_name,
        {{ normalize_phone_cn("payload ->> 'contact_tel'") }} as phone_any_e164,
        {{ normalize_email("payload ->> 'contact_email'") }} as email,
        {{ payload_text('reg_address') }} as address,
        {{ normalize_region("payload ->> 'province'") }} as province,
        {{ normalize_region("payload ->> 'city'") }} as city,
        {{ safe_numeric("payload ->> 'credit_limit'") }}::numeric(18, 2) as credit_limit,
        {{ safe_timestamptz("payload ->> 'created_time'") }} as created_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        customer_id,
        case cust_type_raw
            when 'C' then 'company'
            when 'P' then 'person'
            else {{ infer_customer_type('customer_name', 'uscc') }}
        end as customer_type,
        customer_name,
        {{ company_name_key('customer_name') }} as name_match_key,
        uscc,
        {{ uscc_is_valid('uscc') }} as uscc_is_valid,
        case when id_card_is_valid then id_card_sha256 end as id_card_hash,
        id_card_is_valid,
        contact_name,
        {{ mobile_only('phone_any_e164') }} as mobile_e164,
        {{ landline_only('phone_any_e164') }} as phone_e164,
        email,
        province,
        city,
        address,
        credit_limit,
        created_at,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
