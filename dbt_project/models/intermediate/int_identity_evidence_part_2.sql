{{ config(**identity_evidence_part_config()) }}

{#- Part 2 of the identity evidence (macro identity_evidence): the rules on the fields listed in
    var identity.evidence_part_2_fields. dbt builds both parts at the same time;
    int_identity_evidence is their union. -#}
{{ identity_evidence(2) }}

-- depends_on: {{ ref('int_customer_records') }}
-- depends_on: {{ ref('int_identity_touched_records') }}
