{#- Identity resolution support: what the models need that a select cannot create. -#}

{#- on-run-start: the steward overrides table (stewards write it; every run reads it, nothing
    rebuilds it) and connected_components(), an iterative min-label propagation. -#}
{% macro create_identity_support() %}
    create extension if not exists pg_trgm;
    create extension if not exists fuzzystrmatch;
    create schema if not exists steward;
    create table if not exists steward.identity_overrides (
        override_id bigint generated always as identity primary key,
        record_id_a text not null,
        record_id_b text not null,
        decision text not null check (decision in ('same', 'never')),
        reason text not null,
        decided_by text not null default current_user,
        decided_at timestamptz not null default now(),
        check (record_id_a <> record_id_b)
    );
    comment on table steward.identity_overrides is
        'Data stewards'' identity decisions: two customer records (''source:id'') are the same customer or never are. Always win over the rules; the newest decision on a pair counts.';

    {#- Erasure requests (PIPL): the sync-back engine records every erased record here
        (include/push/erasure.py; same columns as its DDL). Identity resolution leaves them out. -#}
    create schema if not exists ops;
    create table if not exists ops.erasure_tombstones (
        customer_key     text not null,
        source_system    text not null,
        source_record_id text not null,
        primary key (source_system, source_record_id)
    );
    {#- Marketing consent withdrawn per contact (python -m include.push suppress; same columns as the
        sync-back engine's DDL). A customer holding a suppressed contact has not opted in. -#}
    create table if not exists ops.contact_suppressions (
        contact     text not null,
        reason      text not null check (reason in ('unsubscribed', 'no_consent', 'erasure', 'complaint')),
        recorded_at timestamptz not null default now(),
        primary key (contact, reason)
    );

    create schema if not exists intermediate;
    create or replace function intermediate.connected_components(edges_query text)
    returns table (node_id text, component_id text)
    language plpgsql
    as $cc$
    declare
        changed bigint;
        rounds integer := 0;
    begin
        drop table if exists pg_temp.cc_edges;
        drop table if exists pg_temp.cc_labels;
        create temp table cc_edges (a text not null, b text not null);
        execute 'insert into cc_edges (a, b) select * from (' || edges_query || ') as e';
        create temp table cc_labels as
            select node as node_id, node as label
            from (select a as node from cc_edges union select b from cc_edges) as nodes;
        create unique index on cc_labels (node_id);
        analyze cc_edges;
        analyze cc_labels;
        loop
            -- every node takes the smallest label among itself and its neighbours ...
            update cc_labels as l
            set label = best.label
            from (
                select node, min(label) as label
                from (
                    select e.a as node, n.label from cc_edges as e inner join cc_labels as n on n.node_id = e.b
                    union all
                    select e.b as node, n.label from cc_edges as e inner join cc_labels as n on n.node_id = e.a
                ) as offers
                group by node
            ) as best
            where best.node = l.node_id and best.label < l.label;
            get diagnostics changed = row_count;
            -- ... then jumps to its label's label, which halves the remaining distance
            update cc_labels as l
            set label = p.label
            from cc_labels as p
            where p.node_id = l.label and p.label < l.label;
            rounds := rounds + 1;
            exit when changed = 0;
        end loop;
        raise notice 'connected_components: % rounds', rounds;
        return query select cc_labels.node_id, cc_labels.label from cc_labels;
    end
    $cc$;
{% endmacro %}

{#- The evidence rows one exact rule gives: every pair of records sharing the rule's value, among
    values held by 2..max_records_per_value records. `values_cte` has customer_record_id,
    customer_type, match_name, and the rule's field. -#}
{% macro exact_rule_evidence(rule, values_cte) -%}
    {%- set cfg = var('identity') -%}
    {%- set field = rule['field'] -%}
    select
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ field }}' as matched_field,
        a.{{ field }}::text as value_a,
        b.{{ field }}::text as value_b,
        {% if rule.get('name_similarity') -%}
        {{ name_similarity('a.match_name', 'b.match_name') }}::numeric(5, 4) as similarity,
        {%- else -%}
        null::numeric(5, 4) as similarity,
        {%- endif %}
        {{ rule['score'] }}::numeric(5, 4) as score
    from {{ values_cte }} as a
    inner join {{ values_cte }} as b
        on a.{{ field }} = b.{{ field }} and a.customer_record_id < b.customer_record_id
    where
        a.{{ field }} is not null
        and a.{{ field }} in (
            select {{ field }} from {{ values_cte }}
            where {{ field }} is not null
            group by {{ field }}
            having count(*) between 2 and {{ cfg['max_records_per_value'] }}
        )
        {%- if rule.get('same_type') %}
        and a.customer_type = b.customer_type
        {%- endif %}
        {%- if rule.get('cross_type') %}
        and a.customer_type <> b.customer_type
        {%- endif %}
        {%- if rule.get('customer_type') %}
        and a.customer_type = '{{ rule["customer_type"] }}' and b.customer_type = '{{ rule["customer_type"] }}'
        {%- endif %}
        {%- if rule.get('min_length') %}
        and char_length(a.{{ field }}::text) >= {{ rule['min_length'] }}
        {%- endif %}
        {%- if rule.get('name_similarity') %}
        and {{ name_similarity('a.match_name', 'b.match_name') }} >= {{ rule['name_similarity'] }}
        {%- endif %}
{%- endmacro %}

{#- The evidence rows one fuzzy rule gives: pairs in the same block (equal `block_on` columns) whose
    `field` values are similar (pg_trgm) but not equal, in blocks of at most max_block_size. -#}
{% macro fuzzy_rule_evidence(rule, values_cte) -%}
    {%- set cfg = var('identity') -%}
    {%- set field = rule['field'] -%}
    {%- set blocks = rule['block_on'] -%}
    {%- set a_blocks = [] -%}
    {%- for col in blocks %}{% do a_blocks.append('a.' ~ col) %}{% endfor -%}
    select
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ field }}' as matched_field,
        a.{{ field }}::text as value_a,
        b.{{ field }}::text as value_b,
        {{ name_similarity('a.' ~ field, 'b.' ~ field) }}::numeric(5, 4) as similarity,
        {{ rule['score'] }}::numeric(5, 4) as score
    from {{ values_cte }} as a
    inner join {{ values_cte }} as b
        on
            {%- for col in blocks %}
            a.{{ col }} = b.{{ col }} and
            {%- endfor %}
            a.customer_record_id < b.customer_record_id
    where
        a.{{ field }} <> b.{{ field }}
        and a.customer_type = '{{ rule["customer_type"] }}' and b.customer_type = '{{ rule["customer_type"] }}'
        and ({{ a_blocks | join(', ') }}) in (
            select {{ blocks | join(', ') }} from {{ values_cte }}
            where customer_type = '{{ rule["customer_type"] }}'
                {%- for col in blocks %} and {{ col }} is not null{% endfor %}
            group by {{ blocks | join(', ') }}
            having count(*) between 2 and {{ cfg['max_block_size'] }}
        )
        and {{ name_similarity('a.' ~ field, 'b.' ~ field) }} >= {{ rule['similarity'] }}
{%- endmacro %}

{#- How alike two names are, 0..1: the better of pg_trgm's trigram similarity (good for long names
    with words moved) and 1 - edit distance / length (good for short Chinese names, where one wrong
    character of three leaves few trigrams in common). -#}
{% macro name_similarity(a, b) -%}
    greatest(
        similarity({{ a }}, {{ b }}),
        1 - levenshtein(left({{ a }}, 255), left({{ b }}, 255))::numeric
            / nullif(greatest(char_length({{ a }}), char_length({{ b }})), 0)
    )
{%- endmacro %}
