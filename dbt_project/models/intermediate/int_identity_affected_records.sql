{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['affected_at']}],
        post_hook=["{{ mark_consumed(ref('int_identity_touched_records'), 'touched_at') }}"],
    )
}}

{#- The change log of clustering: per run, every customer record whose component, cluster and key
    must be recomputed, logged at affected_at, for int_identity_components, int_identity_clusters,
    int_customer_key_assignments and int_golden_attributes to consume. From the records touched
    since this model last ran (int_identity_touched_records): those records, the records they are
    linked to now (int_identity_edges), and every record of the components all of these were in
    before (int_identity_components as it stands, before this run updates it). Such a set holds
    both ends of every link of its records, so clustering it alone gives what clustering everything
    would; the first build logs nothing (clustering is built whole). -#}
{%- set previous_components = adapter.get_relation(
    database=this.database, schema=this.schema, identifier='int_identity_components') %}

with touched as (
    {{ touched_records(ref('int_identity_touched_records')) }}
),

edges as not materialized (
    select * from {{ ref('int_identity_edges') }}
),

linked as (
    select customer_record_id from touched
    union
    select edges.record_id_b from edges
    where edges.record_id_a = any(array(select customer_record_id from touched))
    union
    select edges.record_id_a from edges
    where edges.record_id_b = any(array(select customer_record_id from touched))
),

affected as (
    select customer_record_id from linked
    {%- if previous_components is not none %}
    union
    select customer_record_id from {{ previous_components }}
    where component_id = any(array(
        select component_id from {{ previous_components }}
        where customer_record_id = any(array(select customer_record_id from linked))
    ))
    {%- endif %}
),

final as (
    select
        customer_record_id,
        '{{ run_started_at }}'::timestamptz as affected_at
    from affected
)

select * from final
