{#- Why two records are one customer: one row per linked record pair and piece of evidence (rule,
    field, the two values, similarity, score), with the customer it built. Steward decisions
    appear as rule 'steward'. For data stewards reviewing a customer. Incremental: a run recomputes the
    pairs with a record changed, re-keyed or affected by identity resolution since the last run
    (mart_touched_records, kept by the first pre-hook in a temporary table); the second pre-hook
    deletes their rows first, comparing the touched record ids in the database's collation, the
    contract's columns' (the ids are byte-ordered, macro customer_record_rows; compared byte by
    byte, the record-id indexes here could not serve the delete). A change of the identity
    configuration rebuilds it whole. -#}
{%- set rule_hash = mart_rule_hash(identity=true) %}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['record_id_a']}, {'columns': ['record_id_b']}, {'columns': ['customer_key']}],
        pre_hook=[
            "{{ create_mart_touched_table(mart_rule_hash(identity=true)) }}",
            "{{ delete_mart_rows(mart_rule_hash(identity=true), 'record_id_a in (select customer_record_id collate \"default\" from pg_temp.mart_touched_records) or record_id_b in (select customer_record_id collate \"default\" from pg_temp.mart_touched_records)') }}",
        ],
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(identity=true)) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_identity_affected_records') }}
-- depends_on: {{ ref('int_customer_records') }}

with
{%- if mart_incremental(rule_hash) %}
touched as (
    select customer_record_id from pg_temp.mart_touched_records
),

edges as (
    {{ mart_touched_edges('touched') }}
),
{%- else %}
edges as (
    select * from {{ ref('int_identity_edges') }}
),
{%- endif %}

evidence as (
    select * from {{ ref('int_identity_evidence') }}
),

assignments as (
    select * from {{ ref('int_customer_key_assignments') }}
    where is_active
),

edge_evidence as (
    select
        edges.record_id_a,
        edges.record_id_b,
        edges.match_score,
        edges.decided_by,
        coalesce(evidence.rule_name, 'steward') as rule_name,
        evidence.matched_field,
        evidence.value_a,
        evidence.value_b,
        evidence.similarity,
        evidence.score as rule_score,
        case when edges.decided_by = 'steward' then edges.rules end as steward_reason
    from edges
    left join evidence
        on
            edges.decided_by = 'rules'
            and edges.record_id_a = evidence.record_id_a
            and edges.record_id_b = evidence.record_id_b
),

final as (
    select
        assignments.customer_key,
        edge_evidence.record_id_a,
        edge_evidence.record_id_b,
        edge_evidence.rule_name,
        edge_evidence.matched_field,
        edge_evidence.value_a,
        edge_evidence.value_b,
        edge_evidence.similarity::numeric,
        edge_evidence.rule_score::numeric,
        edge_evidence.match_score::numeric,
        edge_evidence.decided_by,
        edge_evidence.steward_reason
    from edge_evidence
    inner join assignments on edge_evidence.record_id_a = assignments.customer_record_id
)

select * from final
