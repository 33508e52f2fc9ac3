{{ config(indexes=[{'columns': ['cluster_id'], 'unique': true}]) }}

{#- One stable text key per identity cluster: 'C' + the first 16 hex of md5 of the cluster's smallest
    member ('source_system:source_record_id'). The key is deterministic; it changes only when a
    record with a smaller id joins or leaves the cluster. -#}
with clusters as (
    select * from {{ ref('int_identity_clusters') }}
),

final as (
    select
        'C' || left(md5(cluster_id), 16) as customer_key,
        cluster_id,
        count(*)::integer as member_count
    from clusters
    group by cluster_id
)

select * from final
