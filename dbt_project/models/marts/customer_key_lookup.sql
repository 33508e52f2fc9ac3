{{ config(indexes=[{'columns': ['customer_key'], 'unique': true}]) }}

{#- Any customer_key ever given -> the customer it means today. A system that stored a key before
    two customers were merged still finds the customer: its old key is an alias resolving to the
    surviving one. Retired keys (every record deleted) resolve to nothing. -#}

with key_registry as (
    select * from {{ ref('int_customer_key_registry') }}
),

final as (
    select
        customer_key,
        resolves_to as current_customer_key,
        status as key_status,
        issued_at,
        status_changed_at
    from key_registry
)

select * from final
