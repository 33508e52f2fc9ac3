{#- One row per marketing lead (file row), keyed to the customer it resolved to, with whether that
    customer already exists outside marketing (CRM, ERP, OA or call center). -#}
{{
    config(
        indexes=[
            {'columns': ['lead_id'], 'unique': true},
            {'columns': ['customer_key']},
        ],
    )
}}

with leads as (
    select * from {{ ref('stg_marketing__leads') }}
),

crosswalk as (
    select * from {{ ref('customer_crosswalk') }}
),

systems_per_customer as (
    select
        customer_key,
        string_agg(distinct source_system, ',' order by source_system)
            filter (where source_system <> 'marketing') as matched_systems
    from crosswalk
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
