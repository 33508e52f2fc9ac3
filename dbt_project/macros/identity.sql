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
    {#- product(x): the exact product of a numeric column (int_identity_edges combines scores as
        1 - product(1 - score)); numeric_mul over the group, where exp(sum(ln(...))) took six times
        as long at 1M records, and only approximated it -#}
    create or replace aggregate intermediate.product(numeric) (
        sfunc = numeric_mul, stype = numeric, initcond = '1', parallel = safe
    );
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
        create temp table cc_edges (a text collate "C" not null, b text collate "C" not null);
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

    {#- Clustering of the components that hold two different anchors (valid credit codes or ID-number
        hashes): Kruskal-like, strongest link first. A link that would join two components with
        different anchors is cut. Links of one score are taken together: when they would join two
        anchors through a record (or a group joined by stronger links) that had none, that bridge
        stays alone (no link of it holds, then or later), whichever anchor it met first.
        edges_query: (record a, record b, score); anchors_query: (record, anchor), one row per
        anchored record. Returns every node of the edges with its component, named after its
        smallest record id. -#}
    create or replace function intermediate.anchored_components(edges_query text, anchors_query text)
    returns table (node_id text, component_id text)
    language plpgsql
    as $ac$
    declare
        parent integer[];
        anchor integer[];
        alone boolean[];
        saved_parent integer[];
        saved_anchor integer[];
        tier_edges integer[];
        bridges integer[];
        node_count integer;
        tier numeric;
        pass integer;
        k integer;
        ea integer;
        eb integer;
        ra integer;
        rb integer;
        i integer;
        conflict boolean;
    begin
        if to_regclass('pg_temp.ac_edges') is not null then
            drop table pg_temp.ac_edges;
        end if;
        if to_regclass('pg_temp.ac_nodes') is not null then
            drop table pg_temp.ac_nodes;
        end if;
        if to_regclass('pg_temp.ac_anchors') is not null then
            drop table pg_temp.ac_anchors;
        end if;
        create temp table ac_edges (a text collate "C" not null, b text collate "C" not null, score numeric not null);
        execute 'insert into ac_edges (a, b, score) select * from (' || edges_query || ') as e';
        create temp table ac_anchors (node text collate "C" not null, anchor text not null);
        execute 'insert into ac_anchors (node, anchor) select * from (' || anchors_query || ') as n';
        create temp table ac_nodes as
            select node, (row_number() over (order by node))::integer as id
            from (select a as node from ac_edges union select b from ac_edges) as nodes;
        create unique index on ac_nodes (node);
        analyze ac_nodes;
        select count(*) into node_count from ac_nodes;
        parent := array(select generate_series(1, node_count));
        alone := array_fill(false, array[node_count]);
        -- anchors numbered 1..; 0: none
        anchor := array(
            select coalesce(numbered.anchor_id, 0)
            from ac_nodes
            left join (
                select ac_anchors.node, dense_rank() over (order by ac_anchors.anchor)::integer as anchor_id
                from ac_anchors
            ) as numbered on numbered.node = ac_nodes.node
            order by ac_nodes.id
        );
        for tier in select distinct score from ac_edges order by score desc loop
            tier_edges := array(
                select array[na.id, nb.id]
                from ac_edges
                inner join ac_nodes as na on ac_edges.a = na.node
                inner join ac_nodes as nb on ac_edges.b = nb.node
                where ac_edges.score = tier
                order by na.id, nb.id
            );
            saved_parent := parent;
            saved_anchor := anchor;
            bridges := '{}';
            -- pass 1 finds the bridges of this score; if any, pass 2 redoes it without them
            for pass in 1 .. 2 loop
                conflict := false;
                for k in 1 .. coalesce(array_length(tier_edges, 1), 0) loop
                    ea := tier_edges[k][1];
                    eb := tier_edges[k][2];
                    ra := ea;
                    while parent[ra] <> ra loop
                        parent[ra] := parent[parent[ra]];
                        ra := parent[ra];
                    end loop;
                    rb := eb;
                    while parent[rb] <> rb loop
                        parent[rb] := parent[parent[rb]];
                        rb := parent[rb];
                    end loop;
                    if ra = rb or alone[ra] or alone[rb] then
                        continue;
                    end if;
                    if anchor[ra] <> 0 and anchor[rb] <> 0 and anchor[ra] <> anchor[rb] then
                        -- cut; the sides that had no anchor before this score bridge two
                        if pass = 1 then
                            conflict := true;
                            ra := ea;
                            while saved_parent[ra] <> ra loop
                                ra := saved_parent[ra];
                            end loop;
                            rb := eb;
                            while saved_parent[rb] <> rb loop
                                rb := saved_parent[rb];
                            end loop;
                            if saved_anchor[ra] = 0 then
                                bridges := bridges || ra;
                            end if;
                            if saved_anchor[rb] = 0 then
                                bridges := bridges || rb;
                            end if;
                        end if;
                        continue;
                    end if;
                    if ra < rb then
                        parent[rb] := ra;
                        anchor[ra] := greatest(anchor[ra], anchor[rb]);
                    else
                        parent[ra] := rb;
                        anchor[rb] := greatest(anchor[ra], anchor[rb]);
                    end if;
                end loop;
                exit when pass = 2 or not conflict or cardinality(bridges) = 0;
                parent := saved_parent;
                anchor := saved_anchor;
                foreach i in array bridges loop
                    alone[i] := true;
                end loop;
            end loop;
        end loop;
        for i in 1 .. node_count loop
            ra := i;
            while parent[ra] <> ra loop
                ra := parent[ra];
            end loop;
            parent[i] := ra;
        end loop;
        return query
            select nodes.node, roots.node
            from unnest(parent) with ordinality as found (root, id)
            inner join ac_nodes as nodes on nodes.id = found.id
            inner join ac_nodes as roots on roots.id = found.root;
    end
    $ac$;

    {#- Record ids are byte-ordered text (collate "C", macro customer_record_rows). The key
        assignments are never rebuilt (full_refresh=false): one written before that holds its record
        ids in the database's collation, where an index serves no byte-ordered lookup, and is
        converted in place once (its unique index rebuilt). A full refresh rebuilds the others. -#}
    do $record_ids$
    begin
        if exists (
            select 1 from pg_attribute
            where
                attrelid = to_regclass('intermediate.int_customer_key_assignments')
                and attname = 'customer_record_id'
                and attcollation <> 'pg_catalog."C"'::regcollation
        ) then
            alter table intermediate.int_customer_key_assignments
                alter column customer_record_id type text collate "C";
        end if;
    end
    $record_ids$;
{% endmacro %}

{#- The config both evidence parts share: appended incrementally; unique on (record_id_a,
    record_id_b, rule_name), the key evidence_id is the md5 of (the unique_combination_of_columns
    test checks this index), and record_id_b indexed: incremental runs find a touched record's pairs
    by either record id; the touched pairs deleted before a run (pre-hook) and the change log marked
    consumed after it.
    No index on evidence_id: nothing looks an evidence up by it, and md5 values put each new row on a
    random page of such an index, where the record ids of new records land side by side. 14,814 new
    evidence rows into part 1 at 1M records, after a checkpoint: 629 ms with an evidence_id index,
    271 ms without; in a full build its index took 1.3-2.4 s per part. -#}
{% macro identity_evidence_part_config() -%}
    {{ return({
        'materialized': 'incremental',
        'incremental_strategy': 'append',
        'on_schema_change': 'fail',
        'indexes': [
            {'columns': ['record_id_a', 'record_id_b', 'rule_name'], 'unique': true},
            {'columns': ['record_id_b']},
        ],
        'pre_hook': "{{ delete_touched_pairs(ref('int_identity_touched_records')) }}",
        'post_hook': [
            "{{ mark_identity_config() }}",
            "{{ mark_consumed(ref('int_identity_touched_records'), 'touched_at') }}",
        ],
    }) }}
{%- endmacro %}

{#- The evidence rows of one part of the identity rules (int_identity_evidence_part_1 and _part_2,
    which dbt builds at the same time; int_identity_evidence is their union): part 2 computes the
    rules whose field is in var identity.evidence_part_2_fields, part 1 every other rule. One row per
    pair of records and rule that found evidence they are one customer, with the values compared and
    the rule's score. The rules, their scores and the guards are configured in dbt_project.yml (var
    `identity`), not here:
    - exact rules: the same standardised value, among values held by at most max_records_per_value
      records (the rule's own, else the global one; so switchboards and placeholder emails are no
      evidence);
    - fuzzy rules: name similarity inside blocks (same city and name start), blocks of at most
      max_block_size records.
    Names are compared as match_name: the company-name key for companies, the name for persons.
    Incremental: a run recomputes the evidence of every pair with a record logged in
    int_identity_touched_records since the part last consumed it (its pre-hook deletes it first); the
    other pairs' evidence cannot have changed. -#}
{% macro identity_evidence(part) -%}
{%- set cfg = var('identity') %}
{%- set part_2_fields = cfg.get('evidence_part_2_fields', []) %}
{%- set exact_rules = [] %}
{%- set fuzzy_rules = [] %}
{%- for rule in cfg['exact_rules'] if (rule['field'] in part_2_fields) == (part == 2) %}
    {%- do exact_rules.append(rule) %}
{%- endfor %}
{%- for rule in cfg.get('fuzzy_rules', []) if (rule['field'] in part_2_fields) == (part == 2) %}
    {%- do fuzzy_rules.append(rule) %}
{%- endfor %}
{%- set incremental = identity_incremental() %}
{%- set scope = 'touched' if incremental else none %}
{%- if not (exact_rules or fuzzy_rules) %}
{#- no rule in this part: an empty table of the same columns #}
select
    null::text as evidence_id,
    null::text as record_id_a,
    null::text as record_id_b,
    null::text as rule_name,
    null::text as matched_field,
    null::text as value_a,
    null::text as value_b,
    null::numeric(5, 4) as similarity,
    null::numeric(5, 4) as score
where false
{%- else %}
with records as (
    select * from {{ ref('int_customer_records') }}
),

{%- if incremental %}

touched as (
    {{ touched_records(ref('int_identity_touched_records')) }}
),
{%- endif %}

{#- incremental runs look the touched records' values up by index, so this stays inline there; a
    full run reads every record, and a narrow materialized copy turns each field's pairs and the
    fuzzy blocks into hash joins (inline, the planner misjudges them as a million index lookups into
    the wide records table: the full build of 1M records took 72 s instead of 54 s) -#}
match_values as {{ 'not materialized' if incremental else 'materialized' }} (
    select
        customer_record_id,
        customer_type,
        uscc,
        id_card_hash,
        email,
        mobile_e164,
        phone_e164,
        name_match_key,
        match_name,
        match_city,
        name_prefix,
        {{ legal_form('customer_name') }} as legal_form,
        {{ email_domain('email') }} as email_domain
    from records
),

{#- the pairs sharing a value, once per field, whatever number of rules read them -#}
{%- set fields = [] %}
{%- for rule in exact_rules %}{% if rule['field'] not in fields %}{% do fields.append(rule['field']) %}{% endif %}{% endfor %}
{%- for field in fields %}

{{ field }}_pairs as materialized (
    {{ exact_field_pairs(field, 'match_values', scope, field_max_holders(field)) }}
),
{%- endfor %}

evidence as (
    {%- for rule in exact_rules %}
    {{ exact_rule_evidence(rule, rule['field'] ~ '_pairs') }}
    {%- if not loop.last or fuzzy_rules %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- for rule in fuzzy_rules %}
    {{ fuzzy_rule_evidence(rule, 'match_values', scope) }}
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
),

final as (
    select
        md5(record_id_a || '|' || record_id_b || '|' || rule_name) as evidence_id,
        record_id_a,
        record_id_b,
        rule_name,
        matched_field,
        value_a collate "default" as value_a,
        value_b collate "default" as value_b,
        similarity,
        score
    from evidence
)

select * from final
{%- endif %}
{%- endmacro %}

{#- Every pair of records sharing a value of `field`, among values held by 2..max_holders records (a
    value more records share, a switchboard or a placeholder email, is no evidence), with the value,
    the number of holders and what the field's rules compare (field_rule_columns: customer types,
    match names, match cities, what the precision guard compares): what the exact rules on that
    field select from (each rule keeps its own holder limit). `values_cte` has those columns.
    `scope`: a relation or CTE of customer_record_ids; when given, only the pairs with a record in it
    (incremental runs: the values those records hold, each looked up by index). -#}
{% macro exact_field_pairs(field, values_cte, scope=none, max_holders=none) -%}
    {%- set cfg = var('identity') -%}
    {%- set max_holders = max_holders or cfg['max_records_per_value'] -%}
    {%- set rule_columns = field_rule_columns(field) -%}
    {%- if not scope %}
    {#- a full run: every record holding a value, with the number of its holders counted as the
        records are sorted by it (byte by byte: collate "C" groups as the database's deterministic
        collation does, without its slower comparisons), kept where that number is within the
        limit, then joined to itself on the value. Counting the values apart, joining every record
        to them and sorting all records again for the pairs made the parts' full queries over 1M
        records, each run alone into a temporary table, 18.4-19.7 s (part 1) and 20.2-24.2 s
        (part 2) against 11.6-13.5 s and 16.7-18.9 s, for the same rows. In a build, where the two
        parts and their index builds share two cores, the stage gains less (benchmarks/README.md,
        twelfth session). #}
    with held as materialized (
        select *
        from (
            select
                customer_record_id,
                {{ field }} as value,
                count(*) over (partition by {{ field }} collate "C") as holders
                {%- for column in rule_columns %},
                {{ column }}
                {%- endfor %}
            from {{ values_cte }}
            where {{ field }} is not null
        ) as counted
        where holders between 2 and {{ max_holders }}
    )
    {%- endif %}
    select
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        {#- a's value is b's: the pair shares it #}
        {{ 'shared' if scope else 'a' }}.value::text as value,
        {{ 'shared' if scope else 'a' }}.holders
        {%- for column, alias in rule_columns.items() %},
        a.{{ column }} as {{ alias }}_a,
        b.{{ column }} as {{ alias }}_b
        {%- endfor %}
    {%- if scope %}
    from (
        select scoped.value, held.holders
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
        where held.holders between 2 and {{ max_holders }}
    ) as shared
    inner join {{ values_cte }} as a on a.{{ field }} = shared.value
    inner join {{ values_cte }} as b
        on b.{{ field }} = shared.value and a.customer_record_id < b.customer_record_id
    {#- in (subquery): a hashed lookup per pair (= any(array) would scan the array for every pair) #}
    where
        a.customer_record_id in (select customer_record_id from {{ scope }})
        or b.customer_record_id in (select customer_record_id from {{ scope }})
    {%- else %}
    from held as a
    inner join held as b
        on (b.value collate "C") = (a.value collate "C") and a.customer_record_id < b.customer_record_id
    {%- endif %}
{%- endmacro %}

{#- What the exact rules on `field` compare besides the value (column of the values CTE: its name in
    the pairs, suffixed _a and _b). Only these are carried with the pairs, a million or more of them
    per field, kept in memory or spilled to temporary files: carrying every column for every field
    made the full run of int_identity_evidence's query 43.0 s instead of 33.7 s at 1M records. -#}
{% macro field_rule_columns(field) -%}
    {%- set columns = {} -%}
    {%- for rule in var('identity')['exact_rules'] if rule['field'] == field -%}
        {%- if rule.get('same_type') or rule.get('cross_type') or rule.get('customer_type') -%}
            {%- do columns.update({'customer_type': 'type'}) -%}
        {%- endif -%}
        {%- if rule.get('name_similarity') or rule.get('same_name') -%}
            {%- do columns.update({'match_name': 'name'}) -%}
        {%- endif -%}
        {%- if rule.get('same_city') or rule.get('no_city_conflict') -%}
            {%- do columns.update({'match_city': 'city'}) -%}
        {%- endif -%}
        {%- for column in rule.get('no_conflict_on', []) -%}
            {%- do columns.update({column: column}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(columns) }}
{%- endmacro %}

{#- The largest holder limit of the exact rules on `field` (each rule's max_records_per_value, else
    the global one): the pairs of that field are computed once, up to it. -#}
{% macro field_max_holders(field) -%}
    {%- set cfg = var('identity') -%}
    {%- set limits = [] -%}
    {%- for rule in cfg['exact_rules'] if rule['field'] == field -%}
        {%- do limits.append(rule.get('max_records_per_value', cfg['max_records_per_value'])) -%}
    {%- endfor -%}
    {{ return(limits | max if limits else cfg['max_records_per_value']) }}
{%- endmacro %}

{#- The distinct holder limits of the exact rules on `field`, for the guards' flips. -#}
{% macro field_holder_limits(field) -%}
    {%- set cfg = var('identity') -%}
    {%- set limits = [] -%}
    {%- for rule in cfg['exact_rules'] if rule['field'] == field -%}
        {%- set limit = rule.get('max_records_per_value', cfg['max_records_per_value']) -%}
        {%- if limit not in limits %}{% do limits.append(limit) %}{% endif -%}
    {%- endfor -%}
    {{ return(limits or [cfg['max_records_per_value']]) }}
{%- endmacro %}

{#- The evidence rows one exact rule gives, from the pairs of its field (exact_field_pairs):
    `max_records_per_value` values held by at most that many records (default: the global one),
    `same_type` only records of one customer type, `cross_type` only a company and a person,
    `customer_type` only that type, `min_length` no shorter values, `same_name` equal match names,
    `name_similarity` names at least that alike, `same_city` both records in one (known) match city,
    `no_city_conflict` not in two different known match cities, `no_conflict_on` (legal_form,
    phone_e164, email_domain) not two different values of any of them. -#}
{% macro exact_rule_evidence(rule, pairs_cte) -%}
    {%- set cfg = var('identity') -%}
    select
        record_id_a,
        record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ rule["field"] }}' as matched_field,
        value as value_a,
        value as value_b,
        {% if rule.get('name_similarity') -%}
        {{ name_similarity('name_a', 'name_b') }}::numeric(5, 4) as similarity,
        {%- else -%}
        null::numeric(5, 4) as similarity,
        {%- endif %}
        {{ rule['score'] }}::numeric(5, 4) as score
    from {{ pairs_cte }}
    where holders <= {{ rule.get('max_records_per_value', cfg['max_records_per_value']) }}
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
        and char_length(value) >= {{ rule['min_length'] }}
        {%- endif %}
        {%- if rule.get('same_name') %}
        and name_a = name_b
        {%- endif %}
        {%- if rule.get('same_city') %}
        and city_a = city_b
        {%- endif %}
        {%- if rule.get('no_city_conflict') %}
        and coalesce(city_a = city_b, true)
        {%- endif %}
        {%- for column in rule.get('no_conflict_on', []) %}
        and coalesce({{ column }}_a = {{ column }}_b, true)
        {%- endfor %}
        {%- if rule.get('name_similarity') %}
        and {{ names_alike('name_a', 'name_b', rule['name_similarity']) }}
        {%- endif %}
{%- endmacro %}

{#- The evidence rows one fuzzy rule gives: pairs in the same block (equal `block_on` columns) whose
    `field` values are similar (pg_trgm) but not equal, in blocks of at most max_block_size;
    `max_length_difference` skips pairs whose lengths differ more (before any similarity is computed);
    `no_conflict_on` as for exact_rule_evidence.
    `scope` as for exact_rule_evidence: only the blocks its records are in, and pairs with one of them. -#}
{% macro fuzzy_rule_evidence(rule, values_cte, scope=none) -%}
    {%- set cfg = var('identity') -%}
    {%- set field = rule['field'] -%}
    {%- set blocks = rule['block_on'] -%}
    {%- set a_blocks = [] -%}
    {%- for col in blocks %}{% do a_blocks.append('a.' ~ col) %}{% endfor -%}
    select
    {%- if scope %}
        {#- a is a scoped record, b any other member of its block: the pair's smaller id first #}
        least(a.customer_record_id, b.customer_record_id) as record_id_a,
        greatest(a.customer_record_id, b.customer_record_id) as record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ field }}' as matched_field,
        (case when a.customer_record_id < b.customer_record_id then a.{{ field }} else b.{{ field }} end)::text
            as value_a,
        (case when a.customer_record_id < b.customer_record_id then b.{{ field }} else a.{{ field }} end)::text
            as value_b,
    {%- else %}
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        '{{ rule["name"] }}' as rule_name,
        '{{ field }}' as matched_field,
        a.{{ field }}::text as value_a,
        b.{{ field }}::text as value_b,
    {%- endif %}
        {{ name_similarity('a.' ~ field, 'b.' ~ field) }}::numeric(5, 4) as similarity,
        {{ rule['score'] }}::numeric(5, 4) as score
    {%- if scope %}
    {#- each scoped record (by index) against the other members of its block, in blocks of at most
        max_block_size (not every pair of a block with a scoped record and then those with one: 20x
        fewer candidates); a pair of two scoped records once, from its smaller id. Every condition
        below is symmetric in a and b. The members of the scoped records' blocks are read once, and
        counted as they are read: a block's members lie on as many pages as it has members, and
        counting them for each scoped record, then reading them again for its pairs, took 1.6 s of
        a 2.1 s query for 4,624 scoped companies of 1M records. #}
    from {{ values_cte }} as a
    inner join (
        select
            *,
            count(*) over (partition by {{ blocks | join(', ') }}) as block_members
        from {{ values_cte }}
        where
            customer_type = '{{ rule["customer_type"] }}'
            and ({{ blocks | join(', ') }}) in (
                select {{ blocks | join(', ') }} from {{ values_cte }}
                where
                    customer_record_id = any(array(select customer_record_id from {{ scope }}))
                    and customer_type = '{{ rule["customer_type"] }}'
            )
    ) as b
        on
            {%- for col in blocks %}
            b.{{ col }} = a.{{ col }} and
            {%- endfor %}
            b.customer_record_id <> a.customer_record_id
    where
        a.customer_record_id = any(array(select customer_record_id from {{ scope }}))
        and b.block_members between 2 and {{ cfg['max_block_size'] }}
        and (
            a.customer_record_id < b.customer_record_id
            or b.customer_record_id not in (select customer_record_id from {{ scope }})
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
        {%- for column in rule.get('no_conflict_on', []) %}
        and coalesce(a.{{ column }} = b.{{ column }}, true)
        {%- endfor %}
        {%- if rule.get('max_length_difference') is not none %}
        and abs(char_length(a.{{ field }}) - char_length(b.{{ field }})) <= {{ rule['max_length_difference'] }}
        {%- endif %}
        and {{ names_alike('a.' ~ field, 'b.' ~ field, rule['similarity']) }}
{%- endmacro %}

{#- How alike two names are, 0..1: the better of pg_trgm's trigram similarity (good for long names
    with words moved) and 1 - edit distance / length (good for short Chinese names, where one wrong
    character of three leaves few trigrams in common). Equal names are 1 without computing either:
    the pairs sharing a mobile or an email are mostly one customer's records under one name (90% of
    the 626,541 same-type mobile pairs at 1M records), and the two measures cost about 2 us a pair
    (1.4 s for those pairs). -#}
{% macro name_similarity(a, b) -%}
    case when {{ names_equal(a, b) }} then 1::real else greatest(
        similarity({{ a }}, {{ b }}),
        {{ edit_similarity(a, b) }}
    ) end
{%- endmacro %}

{#- Whether name_similarity(a, b) >= threshold, exactly, computing as little as it can: equal names
    first, then the edit distance, and the trigram similarity (the dearer of the two) only for the
    pairs the edit distance does not pass. (greatest(x, y) >= t is x >= t or y >= t; the edit
    similarity is compared as real, as greatest compares it.) -#}
{% macro names_alike(a, b, threshold) -%}
    (
        ({{ names_equal(a, b) }})
        or ({{ edit_similarity(a, b) }})::real >= {{ threshold }}
        or similarity({{ a }}, {{ b }}) >= {{ threshold }}
    )
{%- endmacro %}

{#- Two names that are one name: equal and not empty (two empty names are no evidence). Both
    name_similarity and names_alike start with it: names_alike is exact only while the two agree. -#}
{% macro names_equal(a, b) -%}
    {{ a }} = {{ b }} and {{ a }} <> ''
{%- endmacro %}

{#- 1 - edit distance / the longer length (null for two empty names). -#}
{% macro edit_similarity(a, b) -%}
    1 - levenshtein(left({{ a }}, 255), left({{ b }}, 255))::numeric
            / nullif(greatest(char_length({{ a }}), char_length({{ b }})), 0)
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


{#- The legal form a company name ends in (股份有限公司, 集团有限公司, 有限责任公司, 有限公司), or null
    (a bare 公司 or a short name says nothing about it). Suffix tests (like) instead of the regular
    expression '(股份有限公司|集团有限公司|有限责任公司|有限公司)$': the same value for each of the 1M
    benchmark's 1,004,768 records, in 0.26-0.37 s against 1.1-1.7 s on one core; both evidence parts
    compute it for every record in a full run. -#}
{% macro legal_form(name) -%}
    case
        when {{ name }} like '%有限公司' then
            case
                when {{ name }} like '%股份有限公司' then '股份有限公司'
                when {{ name }} like '%集团有限公司' then '集团有限公司'
                else '有限公司'
            end
        when {{ name }} like '%有限责任公司' then '有限责任公司'
    end
{%- endmacro %}

{#- The domain of a standardised email address. -#}
{% macro email_domain(email) -%}
    split_part({{ email }}, '@', 2)
{%- endmacro %}

{#- The city the same-city identity rules compare: the record's city, else the first city of var
    match_cities its name or address names (北京星辰科技有限公司, 星辰科技（北京）有限公司). -#}
{% macro match_city(city, name, address) -%}
    {%- set cities = var('match_cities') | join('|') -%}
    coalesce(
        {{ city }},
        substring({{ name }} from '({{ cities }})'),
        substring({{ address }} from '({{ cities }})')
    )
{%- endmacro %}
