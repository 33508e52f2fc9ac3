with records as (
    select * from {{ ref('int_customer_records') }}
),

clusters as (
    select * from {{ ref('int_identity_clusters') }}
),

customer_keys as (
    select * from {{ ref('int_customer_keys') }}
),

edges as (
    select * from {{ ref('int_identity_edges') }}
),

record_matches as (
    select record_id_a as customer_record_id, matched_on from edges
    union
    select record_id_b as customer_record_id, matched_on from edges
),

matched_on_per_record as (
    select
        customer_record_id,
        string_agg(matched_on, ',' order by matched_on) as matched_on
    from record_matches
    group by customer_record_id
),

final as (
    select
        records.source_system,
        records.source_record_id,
        customer_keys.customer_key,
        records.customer_type,
        matched_on_per_record.matched_on,
        records.source_updated_at
    from records
    inner join clusters on records.customer_record_id = clusters.customer_record_id
    inner join customer_keys on clusters.cluster_id = customer_keys.cluster_id
    left join matched_on_per_record on records.customer_record_id = matched_on_per_record.customer_record_id
)

select * from final
