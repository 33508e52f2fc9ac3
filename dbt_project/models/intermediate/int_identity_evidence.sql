{{ config(indexes=[{'columns': ['record_id_a', 'record_id_b']}]) }}

{#- Every piece of evidence that two customer records are one customer: one row per record pair
    and rule that found it, with the values compared and the rule's score. The rules, their scores
    and the guards are configured in dbt_project.yml (var `identity`), not here:
    - exact rules: the same standardised value, among values held by at most max_records_per_value
      records (so switchboards and placeholder emails are no evidence);
    - fuzzy rules: name similarity inside blocks (same city and name start), blocks of at most
      max_block_size records.
    Names are compared as match_name: the company-name key for companies, the name for persons. -#}
{%- set cfg = var('identity') %}

with records as (
    select * from {{ ref('int_customer_records') }}
),

match_values as not materialized (
    select
        customer_record_id,
        customer_type,
        customer_name,
        uscc,
        id_card_hash,
        email,
        mobile_e164,
        phone_e164,
        name_match_key,
        coalesce(name_match_key, customer_name) as match_name,
        city,
        case
            when customer_type = 'company' then left(name_match_key, 2) else left(customer_name, 1)
        end as name_prefix,
        case when customer_type = 'company' then right(name_match_key, 2) end as name_suffix
    from records
),

evidence as (
    {%- for rule in cfg['exact_rules'] %}
    {{ exact_rule_evidence(rule, 'match_values') }}
    union all
    {%- endfor %}
    {%- for rule in cfg['fuzzy_rules'] %}
    {{ fuzzy_rule_evidence(rule, 'match_values') }}
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
