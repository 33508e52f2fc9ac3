{#- Where every golden value came from: one row per customer_key and attribute, with the surviving
    value, its source system, record and updated-at, and the survivorship strategy. -#}

with golden_attributes as (
    select * from {{ ref('int_golden_attributes') }}
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
