{{
    config(
        materialized='incremental',
        unique_key='customer_record_id',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_record_id'], 'unique': true},
            {'columns': ['source_system', 'source_record_id'], 'unique': true},
            {'columns': ['loaded_at']},
            {'columns': ['uscc']},
            {'columns': ['id_card_hash']},
            {'columns': ['mobile_e164']},
            {'columns': ['phone_e164']},
            {'columns': ['email']},
            {'columns': ['name_match_key']},
            {'columns': ['match_city', 'name_prefix']},
        ],
        pre_hook="set local parallel_tuple_cost = 0.01",
        post_hook=[
            "{{ apply_removed_customer_records() }}",
            "{{ mark_consumed(ref('int_customer_record_changes'), 'detected_at') }}",
        ],
    )
}}

{#- Every customer as one source system sees it, in one shape (macro customer_record_rows), with the
    name it is matched on, the city the same-city rules compare (match_city), its blocking prefix and a hash of what identity resolution reads. Built
    whole once; afterwards a run applies the change log int_customer_record_changes from where the
    last run stopped: new and changed records are written, removed ones deleted (post-hook). The
    indexes on the matching fields let incremental identity resolution find a changed record's
    candidates without scanning. The pre-hook lets parallel workers build the full table: the
    planner's default price for handing a row to the leader (parallel_tuple_cost 0.1) outweighs the
    per-row work it cannot see (the match-city regexes, the hash of the whole row), so 1M records
    were shaped on one core, 8.1 s, while dbt's other thread had nothing to run; at 0.01, 4.4 s. Not
    project-wide: set for every model, the 1M build was no faster (142.5 s against 136.5 / 138.4 s),
    likely because where dbt runs two models at once (the evidence parts) workers compete for the
    same two cores. An incremental run's few rows stay serial (parallel_setup_cost). -#}

{%- if is_incremental() %}

with changes as (
    select * from {{ ref('int_customer_record_changes') }}
    where
        detected_at > {{ consumed_through(ref('int_customer_record_changes')) }}
        and detected_at <= {{ log_high_water(ref('int_customer_record_changes'), 'detected_at') }}
),

latest_changes as (
    select distinct on (customer_record_id) *
    from changes
    order by customer_record_id, detected_at desc
),

final as (
    select
        customer_record_id,
        source_system,
        source_record_id,
        customer_type,
        customer_name,
        name_match_key,
        mobile_e164,
        phone_e164,
        email,
        uscc,
        id_card_hash,
        province,
        city,
        address,
        source_created_at,
        source_updated_at,
        loaded_at,
        match_name,
        match_city,
        name_prefix,
        record_hash
    from latest_changes
    where change_kind <> 'removed'
)

{%- else %}

{{ customer_record_rows() }},

final as (
    select * from customer_records
)

{%- endif %}

select * from final

-- depends_on: {{ ref('int_customer_record_changes') }}
