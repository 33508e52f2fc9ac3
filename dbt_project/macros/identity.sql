{#- Identity resolution support: what the models need that a select cannot create. -#}

{#- on-run-start: the steward overrides table (stewards write it; every run reads it, nothing
    rebuilds it) and connected_components(): union-find over the links in one pass, each component
    named after its smallest record id. -#}
{% macro create_identity_support() %}
    create extension if not exists pg_trgm;
    create extension if not exists fuzzystrmatch;
    {#- Created once, then owned by the project's admin (include/access): the guards let dbt
        running as the transformer role, which may not create or comment on them, pass by. -#}
    do $support$
    begin
        if to_regclass('steward.identity_overrides') is null then
            create schema if not exists steward;
            create table steward.identity_overrides (
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
        end if;

        {#- Erasure requests (PIPL): the sync-back engine records every erased record here
            (include/push/erasure.py; same columns as its DDL). Identity resolution leaves them out. -#}
        if to_regclass('ops.erasure_tombstones') is null then
            create schema if not exists ops;
            create table ops.erasure_tombstones (
                customer_key     text not null,
                source_system    text not null,
                source_record_id text not null,
                primary key (source_system, source_record_id)
            );
        end if;
        {#- Marketing consent withdrawn per contact (python -m include.push suppress; same columns as
            the sync-back engine's DDL). A customer holding a suppressed contact has not opted in. -#}
        if to_regclass('ops.contact_suppressions') is null then
            create schema if not exists ops;
            create table ops.contact_suppressions (
                contact     text not null,
                reason      text not null
                    check (reason in ('unsubscribed', 'no_consent', 'erasure', 'complaint')),
                recorded_at timestamptz not null default now(),
                primary key (contact, reason)
            );
        end if;
    end
    $support$;

    create schema if not exists intermediate;
    create or replace function intermediate.connected_components(edges_query text)
    returns table (node_id text, component_id text)
    language plpgsql
    as $cc$
    declare
        parent integer[];
        node_count integer;
        edge record;
        ra integer;
        rb integer;
        i integer;
    begin
        if to_regclass('pg_temp.cc_edges') is not null then
            drop table pg_temp.cc_edges;
        end if;
        if to_regclass('pg_temp.cc_nodes') is not null then
            drop table pg_temp.cc_nodes;
        end if;
        create temp table cc_edges (a text not null, b text not null);
        execute 'insert into cc_edges (a, b) select * from (' || edges_query || ') as e';
        -- nodes numbered in text order, so the smallest number of a component is its smallest id
        create temp table cc_nodes as
            select node, (row_number() over (order by node))::integer as id
            from (select a as node from cc_edges union select b from cc_edges) as nodes;
        create unique index on cc_nodes (node);
        analyze cc_nodes;
        select count(*) into node_count from cc_nodes;
        parent := array(select generate_series(1, node_count));
        -- union-find: each root points at itself; a union hangs the larger root under the smaller,
        -- so a component's root is always its smallest node; path halving keeps the trees flat
        for edge in
            select na.id as a, nb.id as b
            from cc_edges
            inner join cc_nodes as na on cc_edges.a = na.node
            inner join cc_nodes as nb on cc_edges.b = nb.node
        loop
            ra := edge.a;
            while parent[ra] <> ra loop
                parent[ra] := parent[parent[ra]];
                ra := parent[ra];
            end loop;
            rb := edge.b;
            while parent[rb] <> rb loop
                parent[rb] := parent[parent[rb]];
                rb := parent[rb];
            end loop;
            if ra < rb then
                parent[rb] := ra;
            elsif rb < ra then
                parent[ra] := rb;
            end if;
        end loop;
        -- every node straight to its root, in node order (a parent always has a smaller number)
        for i in 1 .. node_count loop
            parent[i] := parent[parent[i]];
        end loop;
        return query
            select nodes.node, roots.node
            from unnest(parent) with ordinality as found (root, id)
            inner join cc_nodes as nodes on nodes.id = found.id
            inner join cc_nodes as roots on roots.id = found.root;
    end
    $cc$;
{% endmacro %}

{#- Every pair of records sharing a value of `field`, among values held by 2..max_records_per_value
    records (a value more records share, a switchboard or a placeholder email, is no evidence), with
    both values, customer types and match names: what the exact rules on that field select from.
    `values_cte` has customer_record_id, customer_type, match_name and the field. `scope`: a relation or
    CTE of customer_record_ids; when given, only the pairs with a record in it (incremental runs: the
    values those records hold, each looked up by index). -#}
{% macro exact_field_pairs(field, values_cte, scope=none) -%}
    {%- set cfg = var('identity') -%}
    select
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        a.{{ field }}::text as value_a,
        b.{{ field }}::text as value_b,
        a.customer_type as type_a,
        b.customer_type as type_b,
        a.match_name as name_a,
        b.match_name as name_b,
        a.city as city_a,
        b.city as city_b
    {%- if scope %}
    from (
        select scoped.value
        from (
            select distinct {{ field }} as value
            from {{ values_cte }}
            where
                customer_record_id = any(array(select customer_record_id from {{ scope }}))
                and {{ field }} is not null
        ) as scoped
        cross join lateral (
            select count(*) as holders from {{ values_cte }} where {{ field }} = scoped.value
        ) as held
        where held.holders between 2 and {{ cfg['max_records_per_value'] }}
    ) as shared
    inner join {{ values_cte }} as a on a.{{ field }} = shared.value
    inner join {{ values_cte }} as b
        on b.{{ field }} = shared.value and a.customer_record_id < b.customer_record_id
    {#- in (subquery): a hashed lookup per pair (= any(array) would scan the array for every pair) #}
    where
        a.customer_record_id in (select customer_record_id from {{ scope }})
        or b.customer_record_id in (select customer_record_id from {{ scope }})
    {%- else %}
    from (
        select {{ field }} as value
        from {{ values_cte }}
        where {{ field }} is not null
        group by {{ field }}
        having count(*) between 2 and {{ cfg['max_records_per_value'] }}
    ) as shared
    inner join {{ values_cte }} as a on a.{{ field }} = shared.value
    inner join {{ values_cte }} as b
        on b.{{ field }} = shared.value and a.customer_record_id < b.customer_record_id
    {%- endif %}
{%- endmacro %}

{#- The evidence rows one exact rule gives, from the pairs of its field (exact_field_pairs):
    `same_type` only records of one customer type, `cross_type` only a company and a person,
    `customer_type` only that type, `min_length` no shorter values, `name_similarity` names at least
    that alike, `same_city` both records in one (known) city, `no_city_conflict` not in two different
    known cities. -#}
{% macro exact_rule_evidence(rule, pairs_cte) -%}
    select
        record_id_a,
        record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ rule["field"] }}' as matched_field,
        value_a,
        value_b,
        {% if rule.get('name_similarity') -%}
        {{ name_similarity('name_a', 'name_b') }}::numeric(5, 4) as similarity,
        {%- else -%}
        null::numeric(5, 4) as similarity,
        {%- endif %}
        {{ rule['score'] }}::numeric(5, 4) as score
    from {{ pairs_cte }}
    where true
        {%- if rule.get('same_type') %}
        and type_a = type_b
        {%- endif %}
        {%- if rule.get('cross_type') %}
        and type_a <> type_b
        {%- endif %}
        {%- if rule.get('customer_type') %}
        and type_a = '{{ rule["customer_type"] }}' and type_b = '{{ rule["customer_type"] }}'
        {%- endif %}
        {%- if rule.get('min_length') %}
        and char_length(value_a) >= {{ rule['min_length'] }}
        {%- endif %}
        {%- if rule.get('same_city') %}
        and city_a = city_b
        {%- endif %}
        {%- if rule.get('no_city_conflict') %}
        and coalesce(city_a = city_b, true)
        {%- endif %}
        {%- if rule.get('name_similarity') %}
        and {{ name_similarity('name_a', 'name_b') }} >= {{ rule['name_similarity'] }}
        {%- endif %}
{%- endmacro %}

{#- The evidence rows one fuzzy rule gives: pairs in the same block (equal `block_on` columns) whose
    `field` values are similar (pg_trgm) but not equal, in blocks of at most max_block_size;
    `max_length_difference` skips pairs whose lengths differ more (before any similarity is computed).
    `scope` as for exact_rule_evidence: only the blocks its records are in, and pairs with one of them. -#}
{% macro fuzzy_rule_evidence(rule, values_cte, scope=none) -%}
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
    {%- if scope %}
    from (
        select scoped.*
        from (
            select distinct {{ blocks | join(', ') }}
            from {{ values_cte }}
            where
                customer_record_id = any(array(select customer_record_id from {{ scope }}))
                and customer_type = '{{ rule["customer_type"] }}'
                {%- for col in blocks %} and {{ col }} is not null{% endfor %}
        ) as scoped
        cross join lateral (
            select count(*) as members from {{ values_cte }} as m
            where m.customer_type = '{{ rule["customer_type"] }}'
                {%- for col in blocks %} and m.{{ col }} = scoped.{{ col }}{% endfor %}
        ) as block
        where block.members between 2 and {{ cfg['max_block_size'] }}
    ) as shared
    inner join {{ values_cte }} as a on
        {%- for col in blocks %}
        a.{{ col }} = shared.{{ col }}{% if not loop.last %} and{% endif %}
        {%- endfor %}
    inner join {{ values_cte }} as b
        on
            {%- for col in blocks %}
            b.{{ col }} = shared.{{ col }} and
            {%- endfor %}
            a.customer_record_id < b.customer_record_id
    where
        (
            a.customer_record_id in (select customer_record_id from {{ scope }})
            or b.customer_record_id in (select customer_record_id from {{ scope }})
        )
        and a.{{ field }} <> b.{{ field }}
        and a.customer_type = '{{ rule["customer_type"] }}' and b.customer_type = '{{ rule["customer_type"] }}'
    {%- else %}
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
    {%- endif %}
        {%- if rule.get('max_length_difference') is not none %}
        and abs(char_length(a.{{ field }}) - char_length(b.{{ field }})) <= {{ rule['max_length_difference'] }}
        {%- endif %}
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

{#- int_customer_key_assignments: whether `key` was ever given: carried now or before by a record
    (incremental runs: the model's table), or known to the registry (every key ever given). -#}
{% macro key_was_issued(key, registry) -%}
    (
        {%- if is_incremental() %}
        exists (select 1 from {{ this }} as issued where issued.customer_key = {{ key }})
        or exists (select 1 from {{ this }} as issued where issued.previous_customer_key = {{ key }})
        or
        {%- endif %}
        {%- if registry is not none %}
        exists (select 1 from {{ registry }} as issued where issued.customer_key = {{ key }})
        {%- else %}
        false
        {%- endif %}
    )
{%- endmacro %}
