{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['customer_key', 'attribute'], 'unique': true}],
        pre_hook="{{ delete_golden_provenance_in_scope() }}",
        post_hook=[
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
            "{{ mark_consumed(ref('int_customer_key_registry'), 'status_changed_at') }}",
            "{{ mark_now('compared') }}",
        ],
    )
}}

{#- Where every golden value came from: one row per customer_key and attribute, with the surviving
    value, its source system, record and updated-at, and the survivorship strategy. Incremental, on
    the change logs int_golden_attributes consumes (as the golden-value history,
    macros/golden_history.sql): a run replaces the rows of the customers whose golden values were
    recomputed since its last run (the pre-hook deletes them, this query inserts them), and every
    row when int_golden_attributes was rebuilt whole since then. -#}
{%- set by_keys = golden_history_by_touched_keys() %}

with
{%- if by_keys %}
touched_keys as (
    {{ golden_touched_keys() }}
),
{%- endif %}

golden_attributes as (
    select * from {{ ref('int_golden_attributes') }}
    where {{ golden_history_scope(by_keys, keys='select customer_key from touched_keys') }}
),

final as (
    select
        customer_key,
        attribute,
        value,
        source_system,
        source_record_id,
        source_updated_at,
        strategy
    from golden_attributes
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}
-- depends_on: {{ ref('int_customer_key_registry') }}
