{{
    config(
        materialized='incremental',
        incremental_strategy='sync',
        unique_key=['customer_key', 'attribute'],
        on_schema_change='fail',
        indexes=[{'columns': ['customer_key', 'attribute'], 'unique': true}],
        pre_hook="{{ golden_sync_scope() }}",
        post_hook=[
            "{{ mark_golden_rebuilt() }}",
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
            "{{ mark_consumed(ref('int_customer_key_registry'), 'status_changed_at') }}",
        ],
    )
}}

{#- Survivorship: one row per customer_key and golden attribute, the surviving value with its
    provenance (source system, record, updated-at) and the strategy that chose it. Strategies and
    source priorities per attribute are configured in dbt_project.yml (var `survivorship`):
    - source_priority: the best-ranked source holding a value, then the most recent record;
    - most_recent: the most recently updated record holding a value, then source rank;
    - most_frequent: the value most member records hold, then source rank, then recency.
    Nulls never survive; the record id breaks any remaining tie, so the result is deterministic.
    Keys, values and record ids are sorted byte by byte (collate "C"; the record ids are
    byte-ordered already; keys and values keep the database's collation, the values labelled back,
    as the matching fields of int_customer_records are byte-ordered and golden values are what BI
    sorts by): a locale's collation compares through strcoll, without abbreviated sort keys, and
    these sorts of up to a million candidates per attribute made the full run's query 19.4 s
    instead of 13.6 s at 1M records. Equal stays equal, so only the order of ties on the record id
    can differ from the locale's, and it is as deterministic.
    Incremental: a run recomputes the customers (keys) holding a record affected since its last run
    (int_identity_affected_records) and the keys whose status changed (int_customer_key_registry),
    and writes only what changed among their rows (incremental strategy 'sync', scoped to those keys
    by the pre-hook): rows no longer chosen are deleted, so merged-away and retired keys lose theirs,
    and rows chosen again unchanged stay as they are. -#}
{%- set rules = var('survivorship') %}

with
{%- if identity_incremental() %}
touched_keys as (
    {{ golden_touched_keys() }}
),
{%- endif %}

records as (
    select * from {{ ref('int_customer_records') }}
),

assignments as (
    select * from {{ ref('int_customer_key_assignments') }}
    where
        is_active
        {%- if identity_incremental() %}
        and customer_key = any(array(select customer_key from touched_keys))
        {%- endif %}
),

{#- only the columns the candidates read: each attribute's candidates are read from this once
    materialized set, and all of every record's columns made it a third wider (1M records: the
    full run's query 14.0 / 15.3 s, 13.4 / 13.9 s) -#}
members as (
    select
        assignments.customer_key,
        records.customer_record_id,
        records.source_system,
        records.source_record_id,
        records.source_updated_at,
        {%- for attribute in rules %}
        records.{{ attribute }}{{ ',' if not loop.last }}
        {%- endfor %}
    from records
    inner join assignments on records.customer_record_id = assignments.customer_record_id
),

{%- for attribute, rule in rules.items() %}

{{ attribute }}_candidates as (
    select
        customer_key,
        {{ attribute }}::text collate "default" as value,
        source_system,
        source_record_id,
        source_updated_at,
        customer_record_id,
        {{ source_rank(rule['priority']) }} as source_rank,
        count(*) over (partition by customer_key collate "C", {{ attribute }} collate "C") as value_frequency
    from members
    where {{ attribute }} is not null
),

{{ attribute }}_survivor as (
    select distinct on (customer_key collate "C")
        customer_key,
        '{{ attribute }}' as attribute,
        value,
        source_system,
        source_record_id,
        source_updated_at,
        '{{ rule["strategy"] }}' as strategy
    from {{ attribute }}_candidates
    order by
        customer_key collate "C",
        {%- if rule['strategy'] == 'source_priority' %}
        source_rank, source_updated_at desc nulls last,
        {%- elif rule['strategy'] == 'most_recent' %}
        source_updated_at desc nulls last, source_rank,
        {%- elif rule['strategy'] == 'most_frequent' %}
        value_frequency desc, source_rank, source_updated_at desc nulls last,
        {%- else %}
        {{ exceptions.raise_compiler_error("survivorship." ~ attribute ~ ": unknown strategy '" ~ rule['strategy'] ~ "' (source_priority, most_recent or most_frequent)") }}
        {%- endif %}
        customer_record_id collate "C"
),
{%- endfor %}

final as (
    {%- for attribute in rules %}
    select * from {{ attribute }}_survivor
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
-- depends_on: {{ ref('int_customer_key_registry') }}
