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

{#- Every piece of evidence that two customer records are one customer: one row per record pair
    and rule that found it, with the values compared and the rule's score. The rules, their scores
    and the guards are configured in dbt_project.yml (var `identity`), not here:
    - exact rules: the same standardised value, among values held by at most max_records_per_value
      records (the rule's own, else the global one; so switchboards and placeholder emails are no
      evidence);
    - fuzzy rules: name similarity inside blocks (same city and name start), blocks of at most
      max_block_size records.
    Names are compared as match_name: the company-name key for companies, the name for persons.
    Incremental: a run recomputes the evidence of every pair with a record logged in
    int_identity_touched_records since the last run (the pre-hook deletes it first); the other
    pairs' evidence cannot have changed. -#}
{%- set cfg = var('identity') %}
{%- set incremental = identity_incremental() %}

with records as (
    select * from {{ ref('int_customer_records') }}
),

{%- if incremental %}

touched as (
    {{ touched_records(ref('int_identity_touched_records')) }}
),
{%- endif %}

{#- incremental runs look the touched records' values up by index, so this stays inline there; a
    full run reads every record, and a narrow materialized copy turns each field's pairs and the
    fuzzy blocks into hash joins (inline, the planner misjudges them as a million index lookups into
    the wide records table: the full build of 1M records took 72 s instead of 54 s) -#}
match_values as {{ 'not materialized' if incremental else 'materialized' }} (
    select
        customer_record_id,
        customer_type,
        uscc,
        id_card_hash,
        email,
        mobile_e164,
        phone_e164,
        name_match_key,
        match_name,
        match_city,
        name_prefix,
        {{ legal_form('customer_name') }} as legal_form,
        {{ email_domain('email') }} as email_domain
    from records
),

{#- the pairs sharing a value, once per field, whatever number of rules read them -#}
{%- set fields = [] %}
{%- for rule in cfg['exact_rules'] %}{% if rule['field'] not in fields %}{% do fields.append(rule['field']) %}{% endif %}{% endfor %}
{%- for field in fields %}

{{ field }}_pairs as materialized (
    {{ exact_field_pairs(field, 'match_values', 'touched' if incremental else none, field_max_holders(field)) }}
),
{%- endfor %}

evidence as (
    {%- for rule in cfg['exact_rules'] %}
    {{ exact_rule_evidence(rule, rule['field'] ~ '_pairs') }}
    union all
    {%- endfor %}
    {%- for rule in cfg['fuzzy_rules'] %}
    {{ fuzzy_rule_evidence(rule, 'match_values', 'touched' if incremental else none) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

final as (
    select
        md5(record_id_a || '|' || record_id_b || '|' || rule_name) as evidence_id,
        record_id_a,
        record_id_b,
        rule_name,
        matched_field,
        value_a,
        value_b,
        similarity,
        score
    from evidence
)

select * from final

-- depends_on: {{ ref('int_identity_touched_records') }}
