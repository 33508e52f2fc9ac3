{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[
            {'columns': ['evidence_id'], 'unique': true},
            {'columns': ['record_id_a', 'record_id_b']},
            {'columns': ['record_id_b']},
        ],
        pre_hook="{{ delete_touched_pairs(ref('int_identity_touched_records')) }}",
        post_hook=[
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_touched_records'), 'touched_at') }}",
        ],
    )
}}

{#- Part 2 of the identity evidence (macro identity_evidence): the rules on the fields listed in
    var identity.evidence_part_2_fields. dbt builds both parts at the same time;
    int_identity_evidence is their union. -#}
{{ identity_evidence(2) }}

-- depends_on: {{ ref('int_customer_records') }}
-- depends_on: {{ ref('int_identity_touched_records') }}
