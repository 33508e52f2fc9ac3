{%- set rule_hash = mart_rule_hash(identity=true) %}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_key']}],
        pre_hook=[
            "{{ create_mart_touched_table(mart_rule_hash(identity=true)) }}",
            "{{ delete_mart_rows(mart_rule_hash(identity=true), crosswalk_touched_rows()) }}",
        ],
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(identity=true)) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_identity_affected_records') }}

{#- Every live source record and the customer_key it belongs to, with how it was linked. Incremental
    (append): a run recomputes the records changed, re-keyed or affected by identity resolution since
    the last one (mart_touched_records, kept by the first pre-hook in a temporary table); the second
    pre-hook deletes their rows first (a removed record's row stays deleted), which are all the rows
    the run writes, so nothing is deleted twice (delete+insert looked each written row up again to
    delete it: the node took 2.46-2.49 s for 19,254 rows of 1M, 2.21-2.28 s now). The contract's
    primary key refuses a second row for a record. A change of the identity configuration rebuilds
    it whole. -#}

{%- if mart_incremental(rule_hash) %}

with touched as (
    select customer_record_id from pg_temp.mart_touched_records
),

records as (
    select * from {{ ref('int_customer_records') }}
    where customer_record_id in (select customer_record_id from touched)
),

assignments as (
    select * from {{ ref('int_customer_key_assignments') }}
    where is_active and customer_record_id in (select customer_record_id from touched)
),

edges as (
    {{ mart_touched_edges('touched') }}
),

{%- else %}

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

{%- endif %}

record_links as (
    select record_id_a as customer_record_id, rules, match_score from edges
    union all
    select record_id_b as customer_record_id, rules, match_score from edges
),

{#- a record's links' rule lists joined; each distinct joined list is then split into its distinct
    rules once (rule_sets), not every link's rules unnested first and sorted with the record ids (6.8M
    rows for 1M records), nor split once per record: 1M records' links make 30,461 distinct lists for
    907,921 records (the full run's query 8.0 s -> 5.3 s, the same rows) -#}
links_per_record as (
    select
        customer_record_id,
        string_agg(rules, ',') as link_rules,
        max(match_score) as best_match_score
    from record_links
    group by customer_record_id
),

rule_sets as (
    select
        link_rules,
        (
            select string_agg(distinct rule_name, ',' order by rule_name)
            from unnest(string_to_array(link_rules, ',')) as rule_name
        ) as matched_on
    from (select distinct link_rules from links_per_record) as distinct_link_rules
),

final as (
    select
        records.source_system,
        records.source_record_id,
        assignments.customer_key,
        records.customer_type,
        rule_sets.matched_on,
        links_per_record.best_match_score,
        records.source_updated_at
    from records
    inner join assignments on records.customer_record_id = assignments.customer_record_id
    left join links_per_record on records.customer_record_id = links_per_record.customer_record_id
    left join rule_sets on links_per_record.link_rules = rule_sets.link_rules
)

select * from final
