{#- Conflict report for data stewards: one row per customer and attribute where the member records
    disagree after standardisation (two different mobiles, two names that are not the same key),
    with every distinct value and the systems holding it, and the value that survived. Incremental: a
    run recomputes the customers holding a record changed, re-keyed or affected by identity
    resolution since the last run and the keys records left (mart_touched_keys); the pre-hook deletes
    their rows first. A change of the identity configuration rebuilds it whole. The values seen are
    listed in the database's collation's order (the matching fields of int_customer_records are
    byte-ordered; the comparable values stay so, as only their count is read). -#}
{%- set rule_hash = mart_rule_hash(identity=true) %}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_key']}],
        pre_hook="{{ delete_mart_rows(mart_rule_hash(identity=true), 'customer_key in (' ~ mart_touched_keys() ~ ')') }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash(identity=true)) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ ref('int_identity_affected_records') }}
{%- set attributes = ['customer_name', 'uscc', 'mobile_e164', 'phone_e164', 'email', 'province', 'city', 'address'] %}

with
{%- if mart_incremental(rule_hash) %}
touched_keys as (
    {{ mart_touched_keys() }}
),
{%- endif %}

records as (
    select * from {{ ref('int_customer_records') }}
),

assignments as (
    select * from {{ ref('int_customer_key_assignments') }}
    where
        is_active
        {%- if mart_incremental(rule_hash) %}
        and customer_key in (select customer_key from touched_keys)
        {%- endif %}
),

golden_attributes as (
    select * from {{ ref('int_golden_attributes') }}
    {%- if mart_incremental(rule_hash) %}
    where customer_key in (select customer_key from touched_keys)
    {%- endif %}
),

members as (
    select
        assignments.customer_key,
        records.*
    from records
    inner join assignments on records.customer_record_id = assignments.customer_record_id
),

attribute_values as (
    {%- for attribute in attributes %}
    select
        customer_key,
        '{{ attribute }}' as attribute,
        {%- if attribute == 'customer_name' %}
        coalesce(name_match_key, customer_name) as comparable_value,
        {%- else %}
        {{ attribute }}::text as comparable_value,
        {%- endif %}
        {{ attribute }}::text collate "default" as value,
        source_system
    from members
    where {{ attribute }} is not null
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

disagreements as (
    select
        customer_key,
        attribute,
        count(distinct comparable_value)::integer as distinct_values,
        string_agg(distinct value || ' (' || source_system || ')', '; ') as values_seen
    from attribute_values
    group by customer_key, attribute
    having count(distinct comparable_value) > 1
),

final as (
    select
        disagreements.customer_key,
        disagreements.attribute,
        disagreements.distinct_values,
        disagreements.values_seen,
        golden_attributes.value as golden_value,
        golden_attributes.source_system as golden_source_system
    from disagreements
    left join golden_attributes
        on
            disagreements.customer_key = golden_attributes.customer_key
            and disagreements.attribute = golden_attributes.attribute
)

select * from final
