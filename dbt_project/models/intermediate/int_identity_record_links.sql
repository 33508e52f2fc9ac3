{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_record_id'], 'unique': true}],
        pre_hook="{{ delete_affected_records(ref('int_identity_affected_records')) }}",
        post_hook=[
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
        ],
    )
}}

{#- How each linked customer record is linked, for customer_crosswalk: the distinct rules of all its
    links (int_identity_edges) and its best link's score. Records with no link are absent. Its own
    model so that it is built from the links while clustering runs on dbt's other thread
    (components, clusters, key assignments: one chain, one thread), not after key assignment, when
    both threads are busy until dim_customer (1M records: the crosswalk's query 11.3 s with these
    links inline, 2.1 s reading this table, which takes 9.4 s here). Incremental like
    int_identity_components: only the records logged in int_identity_affected_records since the
    last run are recomputed (their old rows deleted by the pre-hook); that set holds both ends of
    every link of its records, so their links are the links whose first record is in it. -#}

with edges as (
    select record_id_a, record_id_b, rules, match_score
    from {{ ref('int_identity_edges') }}
    {%- if identity_incremental() %}
    where record_id_a = any(array({{ affected_records(ref('int_identity_affected_records')) }}))
    {%- endif %}
),

record_links as (
    select record_id_a as customer_record_id, rules, match_score from edges
    union all
    select record_id_b as customer_record_id, rules, match_score from edges
),

{#- a record's links' rule lists joined, then split into its distinct rules (a few per record), not
    every link's rules unnested first and sorted with the record ids (6.8M rows for 1M records) -#}
final as (
    select
        customer_record_id,
        (
            select string_agg(distinct rule_name, ',' order by rule_name)
            from unnest(string_to_array(string_agg(rules, ','), ',')) as rule_name
        ) as matched_on,
        max(match_score) as best_match_score
    from record_links
    group by customer_record_id
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
