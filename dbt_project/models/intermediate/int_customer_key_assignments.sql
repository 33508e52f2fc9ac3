{{
    config(
        materialized='incremental',
        unique_key='customer_record_id',
        incremental_strategy='delete+insert',
        full_refresh=false,
        on_schema_change='fail',
        indexes=[
            {'columns': ['customer_record_id'], 'unique': true},
            {'columns': ['customer_key']},
            {'columns': ['previous_customer_key']},
            {'columns': ['changed_at']},
        ],
        post_hook=[
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_affected_records'), 'affected_at') }}",
        ],
    )
}}

{#- Which customer_key each customer record carries: the state that makes keys stable. This table
    is never rebuilt from scratch (full_refresh=false): every run starts from the keys already
    given and only writes the records whose key or status changed.
    - A cluster whose records already carry a key keeps it.
    - Merge: a cluster holding records of several keys keeps the oldest (ties: the smallest key);
      the others become aliases of it in int_customer_key_registry.
    - Split: a key whose records now sit in several clusters stays with the largest part (ties:
      the part with the smallest cluster id); the other parts get new keys.
    - A new key is 'C' + 16 hex of md5(the cluster's smallest record id), or, if that key was ever
      given before, of that id and the run's start time: a key is never reused.
    - A record that left every source (deleted) keeps its last key, marked inactive.
    Identical inputs give identical keys: a rerun with nothing new writes no row. A run reads only
    the records logged in int_identity_affected_records since the last run: every cluster they are
    in, and every cluster that held a key they carried, lies inside that set. -#}

{%- set registry = adapter.get_relation(
    database=target.database, schema=model.schema, identifier='int_customer_key_registry') %}


with
{%- if identity_incremental() %}
affected as (
    {{ affected_records(ref('int_identity_affected_records')) }}
),
{%- endif %}

clusters as (
    select customer_record_id, cluster_id from {{ ref('int_identity_clusters') }}
    {%- if identity_incremental() %}
    where customer_record_id = any(array(select customer_record_id from affected))
    {%- endif %}
),

previous as (
    {%- if is_incremental() %}
    select customer_record_id, customer_key, previous_customer_key, key_issued_at, is_active
    from {{ this }}
    {%- if identity_incremental() %}
    where customer_record_id = any(array(select customer_record_id from affected))
    {%- endif %}
    {%- else %}
    select
        null::text as customer_record_id,
        null::text as customer_key,
        null::text as previous_customer_key,
        null::timestamptz as key_issued_at,
        null::boolean as is_active
    where false
    {%- endif %}
),

members as (
    select
        clusters.cluster_id,
        clusters.customer_record_id,
        previous.customer_key as previous_key,
        previous.key_issued_at
    from clusters
    left join previous
        on clusters.customer_record_id = previous.customer_record_id and previous.is_active
),

key_votes as (
    select
        previous_key,
        cluster_id,
        count(*) as member_count,
        min(key_issued_at) as key_issued_at
    from members
    where previous_key is not null
    group by previous_key, cluster_id
),

key_owners as (
    select distinct on (previous_key)
        previous_key,
        cluster_id,
        key_issued_at
    from key_votes
    order by previous_key, member_count desc, cluster_id
),

kept_keys as (
    select distinct on (cluster_id)
        cluster_id,
        previous_key as customer_key,
        key_issued_at
    from key_owners
    order by cluster_id, key_issued_at, previous_key
),

unkeyed_clusters as (
    select distinct clusters.cluster_id
    from clusters
    where not exists (select 1 from kept_keys where kept_keys.cluster_id = clusters.cluster_id)
),

{#- a key is text of the database's collation, as the keys already given (the key tables, never
    rebuilt, and every mart carry them so); derived from the byte-ordered cluster id, it is labelled
    back before it is looked up, or the key indexes could not serve the lookup (a sequential scan of
    the key tables per new cluster) -#}
{%- set plain_key %}('C' || left(md5(cluster_id), 16)) collate "default"{% endset %}

new_keys as (
    select
        cluster_id,
        case
            when {{ key_was_issued(plain_key, registry) }}
                then ('C' || left(md5(cluster_id || '@' || '{{ run_started_at }}'), 16)) collate "default"
            else {{ plain_key }}
        end as customer_key,
        '{{ run_started_at }}'::timestamptz as key_issued_at
    from unkeyed_clusters
),

cluster_keys as (
    select * from kept_keys
    union all
    select * from new_keys
),

assigned as (
    select
        members.customer_record_id,
        cluster_keys.customer_key,
        members.previous_key,
        cluster_keys.key_issued_at,
        true as is_active
    from members
    inner join cluster_keys on members.cluster_id = cluster_keys.cluster_id
),

vanished as (
    select
        previous.customer_record_id,
        previous.customer_key,
        previous.customer_key as previous_key,
        previous.key_issued_at,
        false as is_active
    from previous
    where
        previous.is_active
        and not exists (select 1 from clusters where clusters.customer_record_id = previous.customer_record_id)
),

changed as (
    select * from assigned
    where
        previous_key is distinct from customer_key
        {%- if is_incremental() %}
        or not exists (
            select 1 from previous
            where previous.customer_record_id = assigned.customer_record_id and previous.is_active
        )
        {%- endif %}

    union all

    select * from vanished
),

final as (
    select
        customer_record_id,
        customer_key,
        previous_key as previous_customer_key,
        key_issued_at,
        is_active,
        '{{ run_started_at }}'::timestamptz as changed_at
    from changed
)

select * from final

-- depends_on: {{ ref('int_identity_affected_records') }}
