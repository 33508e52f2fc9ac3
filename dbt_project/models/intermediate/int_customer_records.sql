{{ config(indexes=[{'columns': ['customer_record_id'], 'unique': true}]) }}

{#- Every customer as one source system sees it, in one shape. Identifiers are kept only when they
    pass their checksum and fit the record's type (a USCC identifies a company, an ID number a
    person), so an invalid or misplaced identifier can never link two records. -#}
with crm_accounts as (
    select * from {{ ref('stg_crm__accounts') }}
),

erp_customers as (
    select * from {{ ref('stg_erp__customer_master') }}
),

oa_archive as (
    select * from {{ ref('stg_oa__customer_archive') }}
),

callcenter_callers as (
    select * from {{ ref('stg_callcenter__callers') }}
),

marketing_leads as (
    select * from {{ ref('stg_marketing__leads') }}
),

erased as (
    select * from {{ source('ops', 'erasure_tombstones') }}
),

unioned as (
    select
        'crm' as source_system,
        account_id as source_record_id,
        customer_type,
        customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        case when uscc_is_valid then uscc end as uscc,
        id_card_hash,
        province,
        city,
        address,
        created_at as source_created_at,
        source_updated_at,
        loaded_at
    from crm_accounts

    union all

    select
        'erp' as source_system,
        customer_id as source_record_id,
        customer_type,
        customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        case when uscc_is_valid then uscc end as uscc,
        id_card_hash,
        province,
        city,
        address,
        created_at as source_created_at,
        source_updated_at,
        loaded_at
    from erp_customers

    union all

    select
        'oa' as source_system,
        archive_id as source_record_id,
        customer_type,
        customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        case when uscc_is_valid then uscc end as uscc,
        null::text as id_card_hash,
        null::text as province,
        null::text as city,
        address,
        archived_at as source_created_at,
        source_updated_at,
        loaded_at
    from oa_archive

    union all

    select
        'callcenter' as source_system,
        caller_id as source_record_id,
        customer_type,
        coalesce(company_name, caller_name) as customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        null::text as uscc,
        id_card_hash,
        null::text as province,
        null::text as city,
        null::text as address,
        null::timestamptz as source_created_at,
        source_updated_at,
        loaded_at
    from callcenter_callers

    union all

    select
        'marketing' as source_system,
        lead_id as source_record_id,
        customer_type,
        coalesce(company_name, lead_name) as customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        null::text as uscc,
        null::text as id_card_hash,
        province,
        city,
        null::text as address,
        created_on::timestamptz as source_created_at,
        source_updated_at,
        loaded_at
    from marketing_leads
),

final as (
    select
        source_system || ':' || source_record_id as customer_record_id,
        source_system,
        source_record_id,
        customer_type,
        customer_name,
        case when customer_type = 'company' then name_match_key end as name_match_key,
        mobile_e164,
        phone_e164,
        email,
        case when customer_type = 'company' then uscc end as uscc,
        case when customer_type = 'person' then id_card_hash end as id_card_hash,
        province,
        city,
        address,
        source_created_at,
        source_updated_at,
        loaded_at
    from unioned
    {#- a record whose person was erased takes no part in identity resolution any more #}
    where not exists (
        select 1 from erased
        where erased.source_system = unioned.source_system and erased.source_record_id = unioned.source_record_id
    )
)

select * from final
