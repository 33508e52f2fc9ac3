{{ config(indexes=[{'columns': ['customer_key']}, {'columns': ['source_system', 'source_record_id'], 'unique': true}]) }}

{#- Every live source record and the customer_key it belongs to, with how it was linked. -#}

with records as (
    select * from {{ ref('int_customer_records') }}
),

assignments as (
    select * from {{ ref('int_customer_key_assignments') }}
    where is_active
),

edges as (
    select * from {{ ref('int_identity_edges') }}
),

record_links as (
    select record_id_a as customer_record_id, rules, match_score from edges
    union all
    select record_id_b as customer_record_id, rules, match_score from edges
),

links_per_record as (
    select
        customer_record_id,
        string_agg(distinct rule_name, ',' order by rule_name) as matched_on,
        max(match_score) as best_match_score
    from record_links
    cross join lateral unnest(string_to_array(rules, ',')) as rule_name
    group by customer_record_id
),

final as (
    select
        records.source_system,
        records.source_record_id,
        assignments.customer_key,
        records.customer_type,
        links_per_record.matched_on,
        links_per_record.best_match_score,
        records.source_updated_at
    from records
    inner join assignments on records.customer_record_id = assignments.customer_record_id
    left join links_per_record on records.customer_record_id = links_per_record.customer_record_id
)

select * from final
