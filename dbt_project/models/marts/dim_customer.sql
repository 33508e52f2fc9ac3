{#- Golden record per customer. Survivorship per attribute: the best non-null value by source rank
    for the attribute's group (var `survivorship`), then the most recently updated record, then the
    smallest record id so the result is deterministic. -#}

with records as (
    select * from {{ ref('int_customer_records') }}
),

clusters as (
    select * from {{ ref('int_identity_clusters') }}
),

customer_keys as (
    select * from {{ ref('int_customer_keys') }}
),

members as (
    select
        customer_keys.customer_key,
        records.*
    from records
    inner join clusters on records.customer_record_id = clusters.customer_record_id
    inner join customer_keys on clusters.cluster_id = customer_keys.cluster_id
),

golden as (
    select
        customer_key,
        {{ survivorship_pick('customer_type', 'legal') }} as customer_type,
        {{ survivorship_pick('customer_name', 'legal') }} as customer_name,
        {{ survivorship_pick('uscc', 'legal') }} as uscc,
        {{ survivorship_pick('id_card_no', 'person') }} as id_card_no,
        {{ survivorship_pick('mobile_e164', 'phone') }} as mobile_e164,
        {{ survivorship_pick('phone_e164', 'phone') }} as phone_e164,
        {{ survivorship_pick('email', 'contact') }} as email,
        {{ survivorship_pick('province', 'address') }} as province,
        {{ survivorship_pick('city', 'address') }} as city,
        {{ survivorship_pick('address', 'address') }} as address,
        string_agg(distinct source_system, ',' order by source_system) as source_systems,
        count(*)::integer as source_record_count,
        min(coalesce(source_created_at, source_updated_at, loaded_at)) as first_seen_at,
        max(coalesce(source_updated_at, loaded_at)) as last_updated_at
    from members
    group by customer_key
),

final as (
    select
        golden.customer_key,
        customer_type,
        customer_name,
        uscc,
        id_card_no,
        mobile_e164,
        phone_e164,
        email,
        province,
        city,
        address,
        source_systems,
        source_record_count,
        first_seen_at,
        last_updated_at,
        -- issue 5: consent, activity and lifecycle (int_customer_lifecycle, one row per customer_key)
        lifecycle.has_marketing_opt_in,
        lifecycle.first_activity_on,
        lifecycle.last_activity_on,
        lifecycle.lifecycle_stage
    from golden
    -- issue 5
    left join {{ ref('int_customer_lifecycle') }} as lifecycle on golden.customer_key = lifecycle.customer_key
)

select * from final
