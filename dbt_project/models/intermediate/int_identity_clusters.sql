{{ config(indexes=[{'columns': ['customer_record_id'], 'unique': true}]) }}

{#- Connected components of the identity graph. A recursive CTE walks the undirected edges; UNION
    (not UNION ALL) drops pairs already found, so it terminates on cycles and reaches the whole of
    any chain. The cluster id is the smallest customer_record_id in the component. Cost grows with
    the square of a component's size, which the over-linking guards in int_identity_edges bound. -#}
with recursive records as (
    select customer_record_id from {{ ref('int_customer_records') }}
),

edges as (
    select record_id_a, record_id_b from {{ ref('int_identity_edges') }}
),

neighbours as (
    select record_id_a as node_id, record_id_b as neighbour_id from edges
    union
    select record_id_b as node_id, record_id_a as neighbour_id from edges
),

reachable (node_id, reached_id) as (
    select customer_record_id, customer_record_id
    from records

    union

    select reachable.node_id, neighbours.neighbour_id
    from reachable
    inner join neighbours on reachable.reached_id = neighbours.node_id
),

final as (
    select
        node_id as customer_record_id,
        min(reached_id) as cluster_id,
        count(*)::integer as cluster_size
    from reachable
    group by node_id
)

select * from final
