{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['detected_at']}, {'columns': ['customer_record_id']}],
        post_hook="{{ mark_landing_read() }}",
    )
}}

{#- The change log of int_customer_records: one row per customer record that appeared ('new'),
    changed ('changed': anything identity resolution or survivorship reads) or left ('removed':
    its latest landed version is a tombstone, or its person was erased), with the record as it is
    now and the values it was matched on before, logged at detected_at. Every run compares the
    records landed since its last run (less var staging_lookback_minutes) with
    int_customer_records as it stands, before that model applies the log; the first build logs
    nothing (everything downstream is built whole). Identity resolution's incremental models
    consume this log, each from where it stopped (ops.incremental_progress). -#}
{%- set previous = adapter.get_relation(database=this.database, schema=this.schema, identifier='int_customer_records') %}
{%- set raw_entities = [
    ('crm', source('crm', 'accounts'), 'stg_crm__accounts', 'account_id'),
    ('erp', source('erp', 'customer_master'), 'stg_erp__customer_master', 'customer_id'),
    ('oa', source('oa', 'customer_archive'), 'stg_oa__customer_archive', 'archive_id'),
    ('callcenter', source('callcenter', 'callers'), 'stg_callcenter__callers', 'caller_id'),
    ('marketing', source('marketing', 'leads'), 'stg_marketing__leads', 'lead_id'),
] %}
{#- the values identity resolution matched on before: customer type, every exact rule's field and
    every fuzzy rule's blocking columns (var identity) -#}
{%- set cfg = var('identity') %}
{%- set old_fields = ['customer_type'] %}
{%- for rule in cfg['exact_rules'] %}{% if rule['field'] not in old_fields %}{% do old_fields.append(rule['field']) %}{% endif %}{% endfor %}
{%- for rule in cfg['fuzzy_rules'] %}{% for col in rule['block_on'] %}{% if col not in old_fields %}{% do old_fields.append(col) %}{% endif %}{% endfor %}{% endfor %}
{%- set since = incremental_watermark('loaded_at', previous) if previous is not none else "'-infinity'::timestamptz" %}

{{ customer_record_rows(where='loaded_at >= ' ~ since) }},

{%- if previous is none %}

final as (
    select
        customer_records.*,
        'new'::text as change_kind,
        {%- for field in old_fields %}
        null::text as old_{{ field }},
        {%- endfor %}
        '{{ run_started_at }}'::timestamptz as detected_at
    from customer_records
    where false
)

{%- else %}

{#- every record with a version or a tombstone landed since the watermark; tombstones are read from
    the landing metadata, as they leave no staging row -#}
candidate_ids as (
    {%- for system, raw, staging, id_column in raw_entities %}
    select ('{{ system }}:' || {{ id_column }}) collate "C" as customer_record_id
    from {{ ref(staging) }}
    where loaded_at >= {{ since }}
    union
    select '{{ system }}:' || _record_id
    from {{ raw }}
    where _deleted and _loaded_at >= {{ since }}
    union
    {% endfor %}
    {#- erased records (PIPL requests) still here: erasure also re-stamps their raw versions, but a
        tombstone written without them must remove the record all the same #}
    select erased.source_system || ':' || erased.source_record_id
    from {{ source('ops', 'erasure_tombstones') }} as erased
    where exists (
        select 1 from {{ previous }} as kept
        where kept.customer_record_id = erased.source_system || ':' || erased.source_record_id
    )
),

previous as (
    select * from {{ previous }}
    where customer_record_id = any(array(select customer_record_id from candidate_ids))
),

compared as (
    select
        coalesce(customer_records.customer_record_id, previous.customer_record_id) as customer_record_id,
        case
            when previous.customer_record_id is null then 'new'
            when customer_records.customer_record_id is null then 'removed'
            when previous.record_hash is distinct from customer_records.record_hash then 'changed'
        end as change_kind,
        {%- for field in old_fields %}
        previous.{{ field }}::text as old_{{ field }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from candidate_ids
    left join customer_records on candidate_ids.customer_record_id = customer_records.customer_record_id
    left join previous on candidate_ids.customer_record_id = previous.customer_record_id
    where customer_records.customer_record_id is not null or previous.customer_record_id is not null
),

final as (
    select
        {%- for column in ['customer_record_id', 'source_system', 'source_record_id', 'customer_type',
            'customer_name', 'name_match_key', 'mobile_e164', 'phone_e164', 'email', 'uscc',
            'id_card_hash', 'province', 'city', 'address', 'source_created_at', 'source_updated_at',
            'loaded_at', 'match_name', 'match_city', 'name_prefix', 'record_hash'] %}
        {%- if column == 'customer_record_id' %}
        compared.customer_record_id,
        {%- else %}
        customer_records.{{ column }},
        {%- endif %}
        {%- endfor %}
        compared.change_kind,
        {%- for field in old_fields %}
        compared.old_{{ field }},
        {%- endfor %}
        '{{ run_started_at }}'::timestamptz as detected_at
    from compared
    left join customer_records on compared.customer_record_id = customer_records.customer_record_id
    where compared.change_kind is not null
)

{%- endif %}

select * from final
