{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_record_id'], 'unique': true}, {'columns': ['cluster_id']}],
        pre_hook="{{ delete_affected_records(ref('int_identity_affected_records')) }}",
        post_hook=[
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
        ],
    )
}}

{#- The identity clusters: every customer record with the cluster it belongs to, named after the
    cluster's smallest record id. Second pass over int_identity_components:
    - a component holding two different valid credit codes or ID numbers (anchors) is clustered
      again by intermediate.anchored_components (macro create_identity_support): strongest link
      first, cutting every link that would join two different anchors, so a record tied to two
      companies joins the one it is more strongly linked to (on a tie, neither);
    - a component still larger than var identity.max_cluster_size is not merged: its records stay
      apart (each its own cluster, oversized_component_id set) and it is listed in
      identity_oversized_clusters for a steward.
    Incremental like int_identity_components: the affected records only. -#}
{%- set cfg = var('identity') %}

with records as (
    select customer_record_id from {{ ref('int_customer_records') }}
    {%- if identity_incremental() %}
    where customer_record_id = any(array({{ affected_records(ref('int_identity_affected_records')) }}))
    {%- endif %}
),

unanchored_components as (
    select customer_record_id as node_id, component_id
    from {{ ref('int_identity_components') }}
    where
        not has_conflicting_anchors
        {%- if identity_incremental() %}
        and customer_record_id = any(array({{ affected_records(ref('int_identity_affected_records')) }}))
        {%- endif %}
),

anchored_components as (
    select node_id, component_id
    from intermediate.anchored_components(
        $edges$
        select edges.record_id_a, edges.record_id_b, edges.match_score
        from {{ ref('int_identity_edges') }} as edges
        inner join {{ ref('int_identity_components') }} as first_pass
            on edges.record_id_a = first_pass.customer_record_id
        where
            first_pass.has_conflicting_anchors
            {%- if identity_incremental() %}
            and edges.record_id_a = any(array({{ affected_records(ref('int_identity_affected_records')) }}))
            {%- endif %}
        $edges$,
        $anchors$
        select records.customer_record_id, coalesce('uscc:' || records.uscc, 'id:' || records.id_card_hash)
        from {{ ref('int_customer_records') }} as records
        inner join {{ ref('int_identity_components') }} as first_pass
            on records.customer_record_id = first_pass.customer_record_id
        where
            first_pass.has_conflicting_anchors
            and (records.uscc is not null or records.id_card_hash is not null)
            {%- if identity_incremental() %}
            and records.customer_record_id = any(array({{ affected_records(ref('int_identity_affected_records')) }}))
            {%- endif %}
        $anchors$
    )
),

components as (
    select * from unanchored_components
    union all
    select * from anchored_components
),

component_sizes as (
    select
        component_id,
        count(*)::integer as component_size
    from components
    group by component_id
),

final as (
    select
        records.customer_record_id,
        case
            when component_sizes.component_size <= {{ cfg['max_cluster_size'] }} then components.component_id
            else records.customer_record_id
        end as cluster_id,
        case
            when component_sizes.component_size > {{ cfg['max_cluster_size'] }} then components.component_id
        end as oversized_component_id,
        coalesce(component_sizes.component_size, 1) as component_size
    from records
    left join components on records.customer_record_id = components.node_id
    left join component_sizes on components.component_id = component_sizes.component_id
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
