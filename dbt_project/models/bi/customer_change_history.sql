{#- Who changed what, when, from which system: one row per customer_key, golden-record version
    and attribute that version set or changed (from snap_dim_customer), with the source system
    and record of the value (from snap_customer_golden_provenance), personal values masked and
    identity numbers (USCC, ID hash) reported as changed without their values. -#}

with snapshot as (
    select * from {{ ref('snap_dim_customer') }}
),

provenance as (
    select * from {{ ref('snap_customer_golden_provenance') }}
),

versions as (
    select
        *,
        row_number() over (partition by customer_key order by dbt_valid_from) as version_number,
        lead(dbt_valid_from) over (partition by customer_key order by dbt_valid_from) as next_valid_from
    from snapshot
),

version_pairs as (
    select
        cur.*,
        prev.customer_type as prev_customer_type,
        prev.customer_name as prev_customer_name,
        prev.uscc as prev_uscc,
        prev.id_card_hash as prev_id_card_hash,
        prev.mobile_e164 as prev_mobile_e164,
        prev.phone_e164 as prev_phone_e164,
        prev.email as prev_email,
        prev.province as prev_province,
        prev.city as prev_city,
        prev.address as prev_address,
        prev.has_marketing_opt_in as prev_has_marketing_opt_in,
        prev.lifecycle_stage as prev_lifecycle_stage
    from versions as cur
    left join versions as prev
        on prev.customer_key = cur.customer_key and prev.version_number = cur.version_number - 1
),

attribute_changes as (
    select
        p.customer_key,
        p.version_number,
        p.dbt_valid_from as changed_at,
        p.dbt_valid_to as superseded_at,
        case when p.version_number = 1 then 'created' else 'changed' end as change_type,
        a.attribute,
        a.old_value,
        a.new_value,
        a.raw_new_value
    from version_pairs as p
    cross join lateral (
        values
            ('customer_type', p.prev_customer_type, p.customer_type, p.customer_type,
                p.prev_customer_type is distinct from p.customer_type),
            ('customer_name', privacy.mask_customer_name(p.prev_customer_name, p.prev_customer_type),
                privacy.mask_customer_name(p.customer_name, p.customer_type), p.customer_name,
                p.prev_customer_name is distinct from p.customer_name),
            ('uscc', null, null, p.uscc, p.prev_uscc is distinct from p.uscc),
            ('id_card_hash', null, null, p.id_card_hash, p.prev_id_card_hash is distinct from p.id_card_hash),
            ('mobile_e164', privacy.mask_phone(p.prev_mobile_e164), privacy.mask_phone(p.mobile_e164),
                p.mobile_e164, p.prev_mobile_e164 is distinct from p.mobile_e164),
            ('phone_e164', privacy.mask_phone(p.prev_phone_e164), privacy.mask_phone(p.phone_e164),
                p.phone_e164, p.prev_phone_e164 is distinct from p.phone_e164),
            ('email', privacy.mask_email(p.prev_email), privacy.mask_email(p.email), p.email,
                p.prev_email is distinct from p.email),
            ('province', p.prev_province, p.province, p.province, p.prev_province is distinct from p.province),
            ('city', p.prev_city, p.city, p.city, p.prev_city is distinct from p.city),
            ('address', privacy.mask_address(p.prev_address), privacy.mask_address(p.address), p.address,
                p.prev_address is distinct from p.address),
            ('has_marketing_opt_in', p.prev_has_marketing_opt_in::text, p.has_marketing_opt_in::text,
                p.has_marketing_opt_in::text, p.prev_has_marketing_opt_in is distinct from p.has_marketing_opt_in),
            ('lifecycle_stage', p.prev_lifecycle_stage, p.lifecycle_stage, p.lifecycle_stage,
                p.prev_lifecycle_stage is distinct from p.lifecycle_stage)
    ) as a (attribute, old_value, new_value, raw_new_value, changed)
    where a.changed and (p.version_number > 1 or a.raw_new_value is not null)
),

closures as (
    {#- a key closed without a next version: merged into another customer or erased -#}
    select
        customer_key,
        version_number,
        dbt_valid_to as changed_at,
        dbt_valid_to as superseded_at,
        'closed' as change_type,
        null::text as attribute,
        null::text as old_value,
        null::text as new_value,
        null::text as raw_new_value
    from versions
    where dbt_valid_to is not null and next_valid_from is null
),

all_changes as (
    select * from attribute_changes
    union all
    select * from closures
),

final as (
    select
        c.customer_key,
        c.version_number,
        c.change_type,
        c.attribute,
        c.old_value,
        c.new_value,
        src.source_system,
        src.source_record_id,
        src.source_updated_at,
        c.changed_at,
        c.superseded_at
    from all_changes as c
    left join lateral (
        {#- the provenance version that carried this value while the golden version was current -#}
        select pr.source_system, pr.source_record_id, pr.source_updated_at
        from provenance as pr
        where
            pr.customer_key = c.customer_key
            and pr.attribute = c.attribute
            and pr.value is not distinct from c.raw_new_value
            and pr.dbt_valid_from < coalesce(c.superseded_at, 'infinity'::timestamp)
        order by pr.dbt_valid_from desc
        limit 1
    ) as src on true
)

select * from final
