{#- The pair's index is unique: the pair's uniqueness test then reads the catalog, not the table
    (0.45 s of each incremental run at 1M records, on its critical path); record_id_a leads it, for
    the lookups by a record. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        indexes=[{'columns': ['record_id_a', 'record_id_b'], 'unique': true}, {'columns': ['record_id_b']}],
        pre_hook=[
            "{{ delete_touched_pairs(ref('int_identity_touched_records')) }}",
            "{{ '' if identity_incremental() else 'set local enable_nestloop = off; set local enable_mergejoin = off; set local enable_indexscan = off' }}",
        ],
        post_hook=[
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_touched_records'), 'touched_at') }}",
        ],
    )
}}

{#- The links identity resolution acts on: one row per record pair whose evidence is strong enough,
    or that a data steward declared the same. Scores combine as independent evidence,
    1 - product(1 - score); a pair links at var identity.link_threshold. Never linked, whatever
    the evidence: pairs a steward declared different, and pairs holding different valid values of
    a conflicting field (two credit codes, two ID numbers). The newest steward decision on a pair
    wins. Incremental like int_identity_evidence: the pairs with a touched record are recomputed.
    A full run joins every grouped pair to both its records by hash (second pre-hook): the planner
    cannot estimate a grouping of the evidence view's two tables (40,000 groups for 1.1M) and would
    look both ends of each pair up by index (1M records: 15.3 s against 10.7 s for the query); with
    nested loops alone off, it sorts both sides for merge joins instead. Index scans are off too:
    the evidence tables' pair indexes hold the grouping's order, and the planner would read the
    3.6M rows through them (the query 13.6 s) rather than sort them in parallel workers (8.0 s). -#}
{%- set cfg = var('identity') %}

{%- if identity_incremental() %}

with touched as (
    {{ touched_records(ref('int_identity_touched_records')) }}
),

evidence as (
    select * from {{ ref('int_identity_evidence') }}
    where
        record_id_a = any(array(select customer_record_id from touched))
        or record_id_b = any(array(select customer_record_id from touched))
),

overrides as (
    select * from {{ source('steward', 'identity_overrides') }}
    where
        record_id_a = any(array(select customer_record_id from touched))
        or record_id_b = any(array(select customer_record_id from touched))
),

{%- else %}

with evidence as (
    select * from {{ ref('int_identity_evidence') }}
),

overrides as (
    select * from {{ source('steward', 'identity_overrides') }}
),

{%- endif %}

{#- not materialized: read twice by record id (the pairs' two ends), through its index #}
records as not materialized (
    select * from {{ ref('int_customer_records') }}
),

steward_decisions as (
    select distinct on (record_id_a, record_id_b)
        record_id_a,
        record_id_b,
        decision,
        reason
    from (
        select
            least(record_id_a, record_id_b) as record_id_a,
            greatest(record_id_a, record_id_b) as record_id_b,
            decision,
            reason,
            decided_at,
            override_id
        from overrides
    ) as ordered
    order by record_id_a, record_id_b, decided_at desc, override_id desc
),

{#- materialized in a full run: inline, the planner put the grouping of every piece of evidence under
    a parallel join, and each of its workers grouped all of it again. Grouped on the record ids
    byte by byte (collate "C", as int_customer_records makes them; written out, since an older
    warehouse's evidence tables may still hold them in the database's collation) -#}
scored_pairs as {{ 'not materialized' if identity_incremental() else 'materialized' }} (
    select
        record_id_a collate "C" as record_id_a,
        record_id_b collate "C" as record_id_b,
        (1 - intermediate.product(1 - score))::numeric(6, 4) as match_score,
        string_agg(rule_name, ',' order by score desc, rule_name) as rules,
        count(*)::integer as evidence_count
    from evidence
    group by record_id_a collate "C", record_id_b collate "C"
),

rule_links as (
    select
        scored_pairs.record_id_a,
        scored_pairs.record_id_b,
        scored_pairs.match_score,
        scored_pairs.rules,
        scored_pairs.evidence_count,
        'rules' as decided_by
    from scored_pairs
    inner join records as a on scored_pairs.record_id_a = a.customer_record_id
    inner join records as b on scored_pairs.record_id_b = b.customer_record_id
    where
        scored_pairs.match_score >= {{ cfg['link_threshold'] }}
        {%- for field in cfg['conflicting_fields'] %}
        and not coalesce(a.{{ field }} <> b.{{ field }}, false)
        {%- endfor %}
),

steward_links as (
    select
        steward_decisions.record_id_a,
        steward_decisions.record_id_b,
        1.0::numeric(6, 4) as match_score,
        'steward: ' || steward_decisions.reason as rules,
        0 as evidence_count,
        'steward' as decided_by
    from steward_decisions
    where
        steward_decisions.decision = 'same'
        and exists (select 1 from records where customer_record_id = steward_decisions.record_id_a)
        and exists (select 1 from records where customer_record_id = steward_decisions.record_id_b)
),

final as (
    select * from rule_links
    where not exists (
        select 1 from steward_decisions
        where
            steward_decisions.record_id_a = rule_links.record_id_a
            and steward_decisions.record_id_b = rule_links.record_id_b
    )

    union all

    select * from steward_links
)

select * from final

-- depends_on: {{ ref('int_identity_touched_records') }}
