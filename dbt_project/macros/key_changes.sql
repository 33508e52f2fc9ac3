{#- Key change logs: which keys a run changed, for the models and tests downstream.

    A mart keyed by customer_key that reads other tables (order statistics, lifecycle, the 360 row)
    needs recomputing only for the customers whose input rows changed, and a relationships test
    needs checking only the rows whose reference or referenced key changed. Each table logs them: a
    statement trigger (intermediate.log_key_changes, added by the post-hook track_key_changes)
    writes the distinct values of its tracked columns (customer_key, and the columns relationships
    tests read) of every row inserted, updated or deleted to ops.key_changes, whatever wrote it (an
    incremental strategy, a pre-hook's delete, a steward's fix).
    - A consumer model reads the entries logged after the last one it consumed
      (ops.key_change_consumers), recomputes those customers only (incremental_strategy 'sync' with
      create_sync_scope: macros/sync_strategy.sql) and marks how far it read.
    - A relationships test that passed checks only the rows whose keys were logged after the run it
      passed in (ops.key_change_checks, written on-run-end from the run's results: a test runs
      after both its tables are written, and nothing writes them after it in that run).
    Both fall back to the whole table when they cannot know what changed: a first run, a table
    rebuilt (its triggers are new: a null entry says "every key"), truncated (a null entry too) or
    without triggers, a failed test. Entries every consumer and check has read are dropped
    on-run-end. -#}

{#- on-run-start: the log, the readers' positions and the trigger function (in intermediate, the
    schema dbt's role owns with what is in it, like intermediate.product: ops holds tables others
    own). -#}
{% macro create_key_change_log() %}
    do $key_changes$
    begin
        if to_regclass('ops.key_changes') is null then
            create schema if not exists ops;
            create table ops.key_changes (
                change_id bigint generated always as identity primary key,
                relation_name text not null,
                column_name text,
                key_value text,
                changed_at timestamptz not null default now()
            );
            create index key_changes_relation_change_idx on ops.key_changes (relation_name, change_id);
            comment on table ops.key_changes is
                'The values of the tracked key columns of the rows each table changed, one entry per value and statement; a null key_value: every key (a rebuilt or truncated table). Kept until every reader has read it.';
        end if;
        if to_regclass('ops.key_change_consumers') is null then
            create table ops.key_change_consumers (
                consumer text not null,
                relation_name text not null,
                relation_oid oid not null,
                consumed_change_id bigint not null,
                updated_at timestamptz not null default now(),
                primary key (consumer, relation_name)
            );
            comment on table ops.key_change_consumers is
                'How far each consumer (a model) has read ops.key_changes of each input, and the input table it read (its oid: a rebuilt table is a new one).';
        end if;
        if to_regclass('ops.key_change_checks') is null then
            create table ops.key_change_checks (
                check_name text primary key,
                child_relation text not null,
                parent_relation text not null,
                checked_change_id bigint not null,
                updated_at timestamptz not null default now()
            );
            comment on table ops.key_change_checks is
                'Relationships tests that passed: the last ops.key_changes entry of the run they last passed in. The next run checks only the rows whose keys were logged after it.';
        end if;
    end
    $key_changes$;

    create schema if not exists intermediate;
    create or replace function intermediate.log_key_changes() returns trigger
    language plpgsql as $log$
    declare
        relation_name text := format('%s.%s', tg_table_schema, tg_table_name);
        column_name text;
    begin
        if tg_op = 'TRUNCATE' then
            insert into ops.key_changes (relation_name, key_value) values (relation_name, null);
            return null;
        end if;
        foreach column_name in array tg_argv loop
            if tg_op in ('INSERT', 'UPDATE') then
                execute format(
                    'insert into ops.key_changes (relation_name, column_name, key_value) '
                    'select distinct $1, $2, %1$I::text from new_rows where %1$I is not null', column_name
                ) using relation_name, column_name;
            end if;
            if tg_op in ('DELETE', 'UPDATE') then
                execute format(
                    'insert into ops.key_changes (relation_name, column_name, key_value) '
                    'select distinct $1, $2, %1$I::text from old_rows where %1$I is not null', column_name
                ) using relation_name, column_name;
            end if;
        end loop;
        return null;
    end
    $log$;
{% endmacro %}

{#- The columns of the current model to log: customer_key (per-customer marts read it) and every
    column a relationships test reads, as the child's column or as the parent's field. -#}
{% macro key_change_columns() -%}
    {%- set columns = [] -%}
    {%- if 'customer_key' in model.columns -%}
        {%- do columns.append('customer_key') -%}
    {%- endif -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test'
          and (node.test_metadata or {}).get('name') == 'relationships' and model.unique_id in node.depends_on.nodes -%}
        {%- set kwargs = node.test_metadata.kwargs -%}
        {%- if node.attached_node == model.unique_id -%}
            {%- do columns.append(node.column_name) -%}
        {%- endif -%}
        {%- if model.unique_id in relationships_parents(node) -%}
            {%- do columns.append(kwargs.get('field')) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(columns | reject('none') | unique | sort | list) }}
{%- endmacro %}

{#- The unique_ids a relationships test refers to (its `to`): what it depends on besides its model. -#}
{% macro relationships_parents(test_node) -%}
    {{ return(test_node.depends_on.nodes | reject('equalto', test_node.attached_node) | list) }}
{%- endmacro %}

{#- The trigger names for `columns`: the columns' hash in the name, so a changed column list makes
    new triggers (and a null entry). -#}
{% macro key_change_trigger_names(columns) -%}
    {%- set suffix = local_md5(columns | join(',')) [:8] -%}
    {{- return({'INSERT': 'c360_keylog_insert_' ~ suffix, 'UPDATE': 'c360_keylog_update_' ~ suffix,
                'DELETE': 'c360_keylog_delete_' ~ suffix, 'TRUNCATE': 'c360_keylog_truncate_' ~ suffix}) -}}
{%- endmacro %}

{#- Post-hook of every table and incremental model: the log triggers on key_change_columns(), added
    when missing or when the columns changed (a new or rebuilt table, a new test), with a null entry:
    what was written before them is unknown. On a steady run, one catalog query and nothing else. -#}
{% macro track_key_changes() -%}
    {%- if not execute or model.config.materialized not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set columns = key_change_columns() -%}
    {%- set names = key_change_trigger_names(columns) if columns else {} -%}
    {%- set existing_query -%}
        select tgname::text from pg_trigger
        where tgrelid = {{ regclass_of(this) }} and tgname like 'c360\_keylog\_%'
    {%- endset -%}
    {%- set existing = run_query(existing_query).columns[0].values() | list -%}
    {%- if existing | sort == names.values() | sort -%}
        {{ return('') }}
    {%- endif -%}
    {%- for name in existing %}
    drop trigger {{ adapter.quote(name) }} on {{ this }};
    {%- endfor %}
    {%- for event, name in names.items() %}
    create trigger {{ name }} after {{ event | lower }} on {{ this }}
    {%- if event == 'INSERT' %} referencing new table as new_rows
    {%- elif event == 'UPDATE' %} referencing old table as old_rows new table as new_rows
    {%- elif event == 'DELETE' %} referencing old table as old_rows
    {%- endif %}
    for each statement execute function intermediate.log_key_changes({{ "'" ~ columns | join("', '") ~ "'" }});
    {%- endfor %}
    insert into ops.key_changes (relation_name, key_value) values ('{{ key_change_name(this) }}', null)
{%- endmacro %}

{#- The name a relation's entries carry: schema.table. -#}
{% macro key_change_name(relation) -%}
    {{ relation.schema }}.{{ relation.identifier }}
{%- endmacro %}

{#- A condition: every change to `column` of the relation named by `relation_name_sql` since
    `since_sql` (a condition on ops.key_changes, aliased key_changes) is logged: its triggers log that
    column, and no null entry (rebuilt, truncated, triggers new) came since. -#}
{% macro key_changes_logged(relation_name_sql, column, since_sql) -%}
    exists (
        select from pg_trigger
        where tgrelid = to_regclass({{ relation_name_sql }}) and tgname like 'c360\_keylog\_insert\_%'
            and pg_get_triggerdef(pg_trigger.oid) like '%''{{ column }}''%'
    )
    and not exists (
        select from ops.key_changes
        where key_changes.relation_name = {{ relation_name_sql }}
            and key_changes.key_value is null
            and {{ since_sql }}
    )
{%- endmacro %}

{#- The customer keys changed in this model's inputs (`inputs`: model names it refs) since it last
    read them: a query of key_value, or none when they cannot be known (see the top of this file).
    Rendered by the model's SQL and by its pre-hook in one run, with the same answer. -#}
{% macro changed_keys_query(inputs) -%}
    {%- if not execute or not is_incremental() or not inputs
          or not ops_table_exists('key_change_consumers') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set state_query -%}
        select
            inputs.relation_name,
            consumers.consumed_change_id,
            consumers.relation_oid is not distinct from to_regclass(inputs.relation_name)::oid
            and {{ key_changes_logged('inputs.relation_name', 'customer_key', 'key_changes.change_id > consumers.consumed_change_id') }}
            as knowable
        from unnest({{ text_array(key_change_input_names(inputs)) }}) as inputs (relation_name)
        left join ops.key_change_consumers as consumers
            on consumers.consumer = '{{ key_change_name(this) }}'
            and consumers.relation_name = inputs.relation_name
    {%- endset -%}
    {%- set rows = run_query(state_query).rows -%}
    {%- for row in rows if not row[2] -%}
        {{ return(none) }}
    {%- endfor -%}
    {%- set query -%}
        {%- for row in rows %}
        select key_value from ops.key_changes
        where relation_name = '{{ row[0] }}' and column_name = 'customer_key' and change_id > {{ row[1] }}
        {{- "\n        union" if not loop.last }}
        {%- endfor %}
    {%- endset -%}
    {{ return(query) }}
{%- endmacro %}

{#- `inputs` (model names) as the schema-qualified names the triggers log. -#}
{% macro key_change_input_names(inputs) -%}
    {%- set names = [] -%}
    {%- for input in inputs -%}
        {%- do names.append(key_change_name(ref(input))) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}

{#- Post-hook of a consumer: it has read its inputs' key changes up to now (its own transaction; no
    input writes while it runs). -#}
{% macro mark_key_changes_read(inputs) -%}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- for name in key_change_input_names(inputs) %}
    insert into ops.key_change_consumers (consumer, relation_name, relation_oid, consumed_change_id)
    select '{{ key_change_name(this) }}', '{{ name }}', to_regclass('{{ name }}')::oid,
        coalesce((select max(change_id) from ops.key_changes where relation_name = '{{ name }}'), 0)
    on conflict (consumer, relation_name) do update
    set relation_oid = excluded.relation_oid, consumed_change_id = excluded.consumed_change_id, updated_at = now();
    {%- endfor %}
{%- endmacro %}

{#- The relationships test, checking only what may have changed: the child rows whose column value,
    or whose parent's field value, was logged since the run this test last passed in. The whole
    child otherwise, as dbt's own test (and always for a `where` config or a parent that is not a
    model). -#}
{% macro default__test_relationships(model, column_name, to, field) -%}
    {%- set since = relationships_checked_change(model, column_name, to, field) -%}
    {%- set indexed = since is not none and leads_an_index(model, column_name) -%}
    select child.{{ column_name }} as from_field
    from {{ model }} as child
    where child.{{ column_name }} is not null
        {%- if since is not none %}
        {#- an index on the column: "= any(array(...))" looks the logged keys up in it (the log's
            statistics lag behind it, and a semi-join then may scan the whole child); else a
            semi-join, as every child row would walk the whole array #}
        and child.{{ column_name }}::text {{ '= any(array(' if indexed else 'in (' }}
            select key_value from ops.key_changes
            where change_id > {{ since }}
                and ((relation_name = '{{ key_change_name(model) }}' and column_name = '{{ column_name }}')
                    or (relation_name = '{{ key_change_name(to) }}' and column_name = '{{ field }}'))
        ){{ ')' if indexed }}
        {%- endif %}
        and not exists (
            select from {{ to }} as parent
            where parent.{{ field }} = child.{{ column_name }}
        )
{%- endmacro %}

{#- `relation` has an index whose first column is `column_name`. -#}
{% macro leads_an_index(relation, column_name) -%}
    {%- set query -%}
        select exists (
            select from pg_index
            join pg_attribute on pg_attribute.attrelid = pg_index.indrelid and pg_attribute.attnum = pg_index.indkey[0]
            where pg_index.indrelid = {{ regclass_of(relation) }} and pg_attribute.attname = '{{ column_name }}'
        )
    {%- endset -%}
    {{ return(run_query(query).columns[0].values()[0]) }}
{%- endmacro %}

{% macro relationships_check_name(child, column_name, parent, field) -%}
    {{ key_change_name(child) }}.{{ column_name }} -> {{ key_change_name(parent) }}.{{ field }}
{%- endmacro %}

{#- The last key change this relationships test has checked (entries after it need checking), or
    none for all rows: it never passed, a table has not logged every change since, or var
    relationships_full_check asks for every row. -#}
{% macro relationships_checked_change(child, column_name, parent, field) -%}
    {%- if not execute or var('relationships_full_check', false) or config.get('where')
          or child is string or parent is string
          or is_unit_test_fixture(child)
          or not ops_table_exists('key_change_checks') -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set query -%}
        select checks.checked_change_id
        from ops.key_change_checks as checks
        where checks.check_name = '{{ relationships_check_name(child, column_name, parent, field) }}'
            and {{ key_changes_logged("'" ~ key_change_name(child) ~ "'", column_name, 'key_changes.change_id > checks.checked_change_id') }}
            and {{ key_changes_logged("'" ~ key_change_name(parent) ~ "'", field, 'key_changes.change_id > checks.checked_change_id') }}
    {%- endset -%}
    {%- set rows = run_query(query).rows -%}
    {%- if rows | length == 0 or rows[0][0] is none -%}
        {{ return(none) }}
    {%- endif -%}
    {{ return(rows[0][0] | int) }}
{%- endmacro %}

{#- [check name, child relation, parent relation] of a relationships test node (without `where`,
    between two models), else none. -#}
{% macro relationships_check(node) -%}
    {%- if node.resource_type != 'test' or (node.test_metadata or {}).get('name') != 'relationships'
          or node.config.where -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set parents = relationships_parents(node) -%}
    {%- if parents | length != 1 or parents[0] not in graph.nodes or node.attached_node not in graph.nodes -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set child, parent = graph.nodes[node.attached_node], graph.nodes[parents[0]] -%}
    {%- set child_name = child.schema ~ '.' ~ (child.alias or child.name) -%}
    {%- set parent_name = parent.schema ~ '.' ~ (parent.alias or parent.name) -%}
    {%- set name = child_name ~ '.' ~ node.column_name ~ ' -> ' ~ parent_name ~ '.' ~ node.test_metadata.kwargs.get('field') -%}
    {{ return([name, child_name, parent_name]) }}
{%- endmacro %}

{#- on-run-end: a relationships test that passed need check only what is logged after this run;
    one that failed, warned, errored or was skipped checks everything next time. Then the entries every
    consumer and every check has read are dropped. -#}
{% macro record_key_change_checks(results) -%}
    {%- if not execute or not ops_table_exists('key_change_checks') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set passed, failed = [], [] -%}
    {%- for result in results if result.node.unique_id in graph.nodes -%}
        {%- set check = relationships_check(graph.nodes[result.node.unique_id]) -%}
        {%- if check and result.status == 'pass' -%}
            {%- do passed.append(check) -%}
        {%- elif check -%}
            {%- do failed.append(check[0]) -%}
        {%- endif -%}
    {%- endfor -%}
    {#- the positions of checks and consumers no longer in the project would keep entries forever -#}
    {%- set known_checks, known_models = [], [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- set check = relationships_check(node) -%}
        {%- if check -%}
            {%- do known_checks.append(check[0]) -%}
        {%- elif node.resource_type == 'model' -%}
            {%- do known_models.append(node.schema ~ '.' ~ (node.alias or node.name)) -%}
        {%- endif -%}
    {%- endfor %}
    delete from ops.key_change_checks where check_name <> all({{ text_array(known_checks) }});
    delete from ops.key_change_consumers where consumer <> all({{ text_array(known_models) }});
    {%- if passed %}
    insert into ops.key_change_checks (check_name, child_relation, parent_relation, checked_change_id)
    select checks.check_name, checks.child_relation, checks.parent_relation,
        coalesce((select max(change_id) from ops.key_changes), 0)
    from (values
    {%- for check, child_name, parent_name in passed %}
        ('{{ check }}', '{{ child_name }}', '{{ parent_name }}'){{ "," if not loop.last }}
    {%- endfor %}
    ) as checks (check_name, child_relation, parent_relation)
    on conflict (check_name) do update
    set checked_change_id = excluded.checked_change_id, updated_at = now();
    {%- endif %}
    {%- if failed %}
    delete from ops.key_change_checks where check_name = any({{ text_array(failed) }});
    {%- endif %}
    -- per relation, the last entry every consumer and every check has read; when that is every
    -- entry (a run that reached every reader: the usual case), truncate rather than delete row by
    -- row (a million entries after an incremental run at 1M customers: 5.8 s to delete)
    do $prune$
    begin
        create temporary table key_changes_read_through on commit drop as
        select
            relations.relation_name,
            coalesce(least(
                (select min(consumed_change_id) from ops.key_change_consumers as consumers
                 where consumers.relation_name = relations.relation_name),
                (select min(checked_change_id) from ops.key_change_checks as checks
                 where relations.relation_name in (checks.child_relation, checks.parent_relation))
            ), {{ 2 ** 62 }}) as change_id
        from (select distinct relation_name from ops.key_changes) as relations;
        if exists (
            select from ops.key_changes
            inner join key_changes_read_through as read_through
                on key_changes.relation_name = read_through.relation_name
            where key_changes.change_id > read_through.change_id
        ) then
            delete from ops.key_changes
            using key_changes_read_through as read_through
            where key_changes.relation_name = read_through.relation_name
                and key_changes.change_id <= read_through.change_id;
        else
            truncate ops.key_changes;
        end if;
        drop table key_changes_read_through;
    end
    $prune$
{%- endmacro %}
