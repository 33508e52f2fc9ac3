{#- Why two records are one customer: one row per linked record pair and piece of evidence (rule,
    field, the two values, similarity, score), with the customer it built. Steward decisions
    appear as rule 'steward'. For data stewards reviewing a customer. -#}

with evidence as (
    select * from {{ ref('int_identity_evidence') }}
),

edges as (
    select * from {{ ref('int_identity_edges') }}
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
        edge_evidence.similarity,
        edge_evidence.rule_score,
        edge_evidence.match_score,
        edge_evidence.decided_by,
        edge_evidence.steward_reason
    from edge_evidence
    inner join assignments on edge_evidence.record_id_a = assignments.customer_record_id
)

select * from final
