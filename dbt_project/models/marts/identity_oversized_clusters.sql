{#- Components of the identity graph too large to be one customer (var identity.max_cluster_size):
    their records were kept apart. One row per such component, with its size and the rules that
    chained it together, for a steward to split with 'never' overrides or to confirm. -#}

with clusters as (
    select * from {{ ref('int_identity_clusters') }}
    where oversized_component_id is not null
),

edges as (
    select * from {{ ref('int_identity_edges') }}
),

component_rules as (
    select
        clusters.oversized_component_id,
        rule_name,
        count(*)::integer as link_count
    from clusters
    inner join edges on clusters.customer_record_id = edges.record_id_a
    cross join lateral unnest(string_to_array(edges.rules, ',')) as rule_name
    group by clusters.oversized_component_id, rule_name
),

final as (
    select
        clusters.oversized_component_id as component_id,
        max(clusters.component_size) as component_size,
        (
            select string_agg(component_rules.rule_name || ' x' || component_rules.link_count, ', '
                order by component_rules.link_count desc, component_rules.rule_name)
            from component_rules
            where component_rules.oversized_component_id = clusters.oversized_component_id
        ) as linking_rules
    from clusters
    group by clusters.oversized_component_id
)

select * from final
