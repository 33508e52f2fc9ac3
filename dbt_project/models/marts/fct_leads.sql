{#- One row per marketing lead (file row), keyed to the customer it resolved to, with whether that
    customer already exists outside marketing (CRM, ERP, OA or call center). Incremental on lead_id
    (delete+insert): a run recomputes the leads landed since the last run and the leads of every
    customer_key a record joined or left (its matched systems may have changed); the pre-hook deletes
    the landed ones first (a tombstone's row stays deleted). -#}
{%- set rule_hash = mart_rule_hash([]) %}
{{
    config(
        materialized='incremental',
        unique_key='lead_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_key']},
        ],
        pre_hook="{{ delete_mart_rows(mart_rule_hash([]), 'lead_id = any(array(' ~ mart_landed_ids(source('marketing', 'leads')) ~ '))') }}",
        post_hook=[
            "{{ mark_mart_rules(mart_rule_hash([])) }}",
            "{{ mark_landing_read() }}",
        ],
    )
}}
-- depends_on: {{ source('marketing', 'leads') }}
-- depends_on: {{ ref('int_customer_key_assignments') }}

{# An incremental run reads the crosswalk by index for a few leads: not materialized (a materialized
    CTE has neither index nor statistics). The per-customer systems are grouped once, materialized:
    inline, the planner expected 200 customers and grouped them again for every lead (1,099 leads
    against 1M crosswalk rows: 0.46-0.49 s, 0.1 s now). A full run reads every row: both as before. #}
with crosswalk as {{ 'not materialized ' if mart_incremental(rule_hash) }}(
    select * from {{ ref('customer_crosswalk') }}
),

{%- if mart_incremental(rule_hash) %}

rekeyed as (
    {{ mart_rekeyed_records() }}
),

changed as (
    {{ mart_landed_ids(source('marketing', 'leads')) }}
    union
    select lead_id from {{ this }}
    where customer_key in (
        select customer_key from rekeyed
        union
        select previous_customer_key from rekeyed
    )
    union
    {{ mart_rekeyed_source_ids('marketing', 'rekeyed') }}
),

leads as (
    select * from {{ ref('stg_marketing__leads') }}
    where lead_id = any(array(select _record_id from changed))
),

{%- else %}

leads as (
    select * from {{ ref('stg_marketing__leads') }}
),

{%- endif %}

systems_per_customer as {{ 'materialized ' if mart_incremental(rule_hash) }}(
    select
        customer_key,
        string_agg(distinct source_system, ',' order by source_system)
            filter (where source_system <> 'marketing') as matched_systems
    from crosswalk
    {%- if mart_incremental(rule_hash) %}
    where customer_key in (
        select crosswalk.customer_key
        from leads
        inner join crosswalk
            on crosswalk.source_system = 'marketing'
            and crosswalk.source_record_id = leads.lead_id
    )
    {%- endif %}
    group by customer_key
),

final as (
    select
        leads.lead_id,
        crosswalk.customer_key,
        leads.customer_type,
        leads.campaign_code,
        leads.lead_source,
        leads.source_file,
        leads.source_row,
        systems_per_customer.matched_systems is not null as matched_existing_customer,
        systems_per_customer.matched_systems,
        leads.created_on,
        leads.loaded_at
    from leads
    inner join crosswalk
        on crosswalk.source_system = 'marketing'
        and crosswalk.source_record_id = leads.lead_id
    left join systems_per_customer on crosswalk.customer_key = systems_per_customer.customer_key
)

select * from final
