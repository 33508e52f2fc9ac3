{{
    config(
        materialized='incremental',
        unique_key='caller_id',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['caller_id'], 'unique': true}, {'columns': ['loaded_at']}],
        pre_hook="{{ delete_changed_staging_rows('caller_id', source('callcenter', 'callers')) }}",
    )
}}

{#- A customer entity's staging is a table kept incrementally (identity resolution reads it by
    changed record): a run recomputes only the records with a version landed since the last one
    (macro staging_changed_records_filter; the pre-hook drops their old rows first). -#}
with source as (
    select * from {{ source('callcenter', 'callers') }}
    {{- staging_changed_records_filter(source('callcenter', 'callers')) }}
),

latest as (
    {{ latest_record_version('source') }}
),

renamed as materialized (
    select
        _record_id as caller_id,
        {{ payload_text('name') }} as caller_name,
        {{ payload_text('company_name') }} as company_name,
        {{ normalize_phone_cn("payload ->> 'phone'") }} as phone_1_e164,
        {{ normalize_phone_cn("payload ->> 'alt_phone'") }} as phone_2_e164,
        {{ normalize_email("payload ->> 'email'") }} as email,
        {#- the resident ID number itself never lands: extraction hashed it (include/identity/pii.py) #}
        payload ->> 'id_card_no_sha256' as id_card_sha256,
        coalesce((payload ->> 'id_card_no_valid')::boolean, false) as id_card_is_valid,
        _source_updated_at as source_updated_at,
        _loaded_at as loaded_at
    from latest
),

final as (
    select
        caller_id,
        -- A caller who names a company calls on its behalf: the customer is the company.
        case when company_name is not null then 'company' else 'person' end as customer_type,
        caller_name,
        company_name,
        {{ company_name_key('company_name') }} as name_match_key,
        coalesce({{ mobile_only('phone_1_e164') }}, {{ mobile_only('phone_2_e164') }}) as mobile_e164,
        coalesce({{ landline_only('phone_1_e164') }}, {{ landline_only('phone_2_e164') }}) as phone_e164,
        email,
        case when id_card_is_valid then id_card_sha256 end as id_card_hash,
        id_card_is_valid,
        source_updated_at,
        loaded_at
    from renamed
)

select * from final
