{{
    config(
        materialized='incremental',
        unique_key='account_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['account_id'], 'unique': true}, {'columns': ['loaded_at']}],
        pre_hook="{{ delete_changed_staging_rows('account_id', source('crm', 'accounts')) }}",
    )
}}

{#- A customer entity's staging is a table kept incrementally (identity resolution reads it by
    changed record): a run recomputes only the records with a version landed since the last one
    (macro staging_changed_records_filter; the pre-hook drops their old rows first). -#}
with source as (
    select * from {{ source('crm', 'accounts') }}
    {{- staging_changed_records_filter(source('crm', 'accounts')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as account_id,
        {{ payload_text('account_type') }} as account_type_raw,
        {{ payload_text('account_name') }} as customer_name,
        {{ normalize_uscc("payload ->> 'uscc'") }} as uscc,
        {#- the resident ID number itself never lands: extraction hashed it (include/identity/pii.py) #}
        payload ->> 'id_card_no_sha256' as id_card_sha256,
        coalesce((payload ->> 'id_card_no_valid')::boolean, false) as id_card_is_valid,
        {{ normalize_phone_cn("payload ->> 'phone'") }} as phone_any_e164,
        {{ normalize_email("payload ->> 'email'") }} as email,
        {{ payload_text('industry') }} as industry,
        {{ normalize_region("payload ->> 'province'") }} as province,
        {{ normalize_region("payload ->> 'city'") }} as city,
        {{ payload_text('address') }} as address,
        {{ payload_text('owner_sales') }} as owner_sales,
        {{ payload_text('updated_by') }} as updated_by,
        {{ safe_timestamptz("payload ->> 'created_at'") }} as created_at,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        account_id,
        case
            when lower(account_type_raw) in ('company', '企业', '公司') then 'company'
            when lower(account_type_raw) in ('person', '个人') then 'person'
            else {{ infer_customer_type('customer_name', 'uscc') }}
        end as customer_type,
        customer_name,
        {{ company_name_key('customer_name') }} as name_match_key,
        uscc,
        {{ uscc_is_valid('uscc') }} as uscc_is_valid,
        case when id_card_is_valid then id_card_sha256 end as id_card_hash,
        id_card_is_valid,
        {{ mobile_only('phone_any_e164') }} as mobile_e164,
        {{ landline_only('phone_any_e164') }} as phone_e164,
        email,
        industry,
        province,
        city,
        address,
        owner_sales,
        updated_by,
        created_at,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
