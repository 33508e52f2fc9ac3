{#- Key and not-null tests on properties the database enforces.

    A `unique` test on a column that a valid unique index covers by itself, a
    `unique_combination_of_columns` test on columns a unique index covers exactly, or a `not_null`
    test on a table column declared NOT NULL would scan the whole table on every run to find what
    PostgreSQL refuses on every insert and update ("when enforced, a constraint guarantees that you
    will never see invalid data in the table", dbt's constraints reference). For those, the test
    checks the catalog instead: it fails, with a row naming what is missing, when the index or the
    NOT NULL is gone, so the guarantee itself stays tested. Every other case (views, columns without
    the constraint, expressions, tests with a `where` config, whose `model` is then a subquery) runs
    the scanning query, unchanged.

    `enforce_tested_not_null()` (a post-hook on every table and incremental model) declares NOT NULL
    the columns that carry a `not_null` test of severity error: one validating scan of the table
    when it is created, instead of one scan per tested column on every run; an incremental run's
    inserts are checked by PostgreSQL as they are written. A null in such a column now fails the
    model itself, with PostgreSQL's message naming the column ('column "x" of relation "y" contains
    null values' from a table's post-hook, 'null value in column "x" ... violates not-null
    constraint' from an incremental insert), and the model's transaction is rolled back, so the
    table keeps its previous content.

    dbt's `unique` and `not_null` reach these through dispatch (`dispatch` in dbt_project.yml puts
    this project before dbt's global macros).

    The event-mode build leaves these catalog checks out, as no landed data can fail them:
    include/event_mode.py (database_enforced_tests) names them from the manifest by the rules here
    and in the post-hooks; tests/dbt/test_enforced_tests.py checks that both agree. -#}

{% macro default__test_unique(model, column_name) %}
    {%- if enforced_property(model, [column_name], 'unique') %}
-- {{ column_name }}: uniqueness enforced by a unique index on it (catalog check, no table scan)
select '{{ column_name }}: no valid unique index on it alone' as unique_field, 1 as n_records
where not {{ enforced_condition(model, [column_name], 'unique') }}
    {%- else %}
{{ dbt.default__test_unique(model, column_name) }}
    {%- endif %}
{% endmacro %}

{% macro default__test_not_null(model, column_name) %}
    {%- if not should_store_failures() and enforced_property(model, [column_name], 'not_null') %}
-- {{ column_name }}: declared NOT NULL on the table (catalog check, no table scan)
select '{{ column_name }}: not declared NOT NULL' as {{ column_name }}
where not {{ enforced_condition(model, [column_name], 'not_null') }}
    {%- else %}
{{ dbt.default__test_not_null(model, column_name) }}
    {%- endif %}
{% endmacro %}

{#- SQL condition, true when the database enforces `property` for `columns` of the table `model`:
    'unique': a valid unique index whose key is exactly these columns (any order), no predicate, no
    expression; 'unique_combination': the same, and either every column declared NOT NULL or the
    index NULLS NOT DISTINCT (the combination test counts nulls as equal, an index does not);
    'not_null': the (one) column declared NOT NULL on a table. -#}
{% macro enforced_condition(model, columns, property) -%}
    {%- set names = text_array(columns) -%}
    {%- set relation = regclass_of(model) -%}
    {%- if property in ('unique', 'unique_combination') -%}
    exists (
        select
        from pg_index as i
        where
            i.indrelid = {{ relation }}
            and i.indisunique
            and i.indisvalid
            and i.indpred is null
            and i.indexprs is null
            and i.indnkeyatts = {{ columns | length }}
            and (
                select array_agg(a.attname::text order by a.attname::text)
                from unnest(i.indkey::int2[]) with ordinality as k (attnum, ord)
                inner join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum
                where k.ord <= i.indnkeyatts
            ) = array(select unnest({{ names }}) order by 1)
            {%- if property == 'unique_combination' %}
            and (
                i.indnullsnotdistinct
                or not exists (
                    select
                    from pg_attribute as a
                    where
                        a.attrelid = i.indrelid
                        and a.attname = any ({{ names }})
                        and not a.attnotnull
                )
            )
            {%- endif %}
    )
    {%- elif property == 'not_null' -%}
    exists (
        select
        from pg_attribute as a
        inner join pg_class as c on c.oid = a.attrelid
        where
            a.attrelid = {{ relation }}
            and c.relkind in ('r', 'p')
            and a.attname = '{{ columns[0] }}'
            and a.attnotnull
            and not a.attisdropped
    )
    {%- else -%}
        {{ exceptions.raise_compiler_error("enforced_condition: unknown property " ~ property) }}
    {%- endif -%}
{%- endmacro %}

{#- True when, as the test is rendered (just before it runs), the database enforces `property` for `columns` of `model`: `model`
    is a relation (not the subquery a `where` config makes), the columns plain lower-case names,
    and the catalog shows the index or the NOT NULL. -#}
{% macro enforced_property(model, columns, property) -%}
    {%- if not execute or model is string or model.identifier is not defined -%}
        {{ return(false) }}
    {%- endif -%}
    {%- for column in columns if not modules.re.fullmatch('[a-z_][a-z0-9_]*', column | string) -%}
        {{ return(false) }}
    {%- endfor -%}
    {%- set found = run_query('select ' ~ enforced_condition(model, columns, property)) -%}
    {{ return(found.columns[0].values()[0] == true) }}
{%- endmacro %}

{#- Post-hook: declare NOT NULL, on this table or incremental model, every column with a `not_null`
    data test of severity error and no `where` config, that is not NOT NULL yet. Nothing to do (no
    ALTER, no lock; one catalog query as the hook is rendered) when they all are, as on every
    incremental run after the first. -#}
{% macro enforce_tested_not_null() -%}
    {%- if not execute or model.config.materialized not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set tested = [] -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.attached_node == model.unique_id -%}
        {%- set name = (node.test_metadata or {}).get('name') -%}
        {%- set column = node.column_name | string -%}
        {%- if name == 'not_null' and (node.config.severity | lower) == 'error' and not node.config.where
              and modules.re.fullmatch('[a-z_][a-z0-9_]*', column) and column not in tested -%}
            {%- do tested.append(column) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not tested -%}
        {{ return('') }}
    {%- endif -%}
    {%- set nullable -%}
        select a.attname
        from pg_attribute as a
        where
            a.attrelid = {{ regclass_of(this) }}
            and a.attname = any ({{ text_array(tested) }})
            and not a.attnotnull
            and not a.attisdropped
        order by a.attnum
    {%- endset -%}
    {%- set columns = run_query(nullable).columns[0].values() -%}
    {%- if columns | length == 0 -%}
        {{ return('') }}
    {%- endif -%}
    alter table {{ this }}
    {%- for column in columns %}
        alter column {{ adapter.quote(column) }} set not null{{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- `relation` as a regclass expression (null when it does not exist). -#}
{% macro regclass_of(relation) -%}
    to_regclass('{{ relation | string | replace("'", "''") }}')
{%- endmacro %}

{#- `values` (plain names) as a text[] literal. -#}
{% macro text_array(values) -%}
    array[{% for v in values %}'{{ v }}'{{ ", " if not loop.last }}{% endfor %}]::text[]
{%- endmacro %}

{#- Row rules: tests that judge every row on its own (accepted_values, expression_is_true, is_e164,
    is_valid_uscc) are CHECK constraints PostgreSQL can enforce. `enforce_tested_row_rules()` (a
    post-hook on every table and incremental model) adds one per such test of severity error and no
    `where` config, named after the test, its column and a hash of the condition; the test then
    checks that a validated constraint of that name is on the table, and runs its scan otherwise
    (views, expressions that read other rows or the clock, values built by jinja). A row breaking the
    rule now fails the model that writes it, as with NOT NULL above ('new row for relation "y"
    violates check constraint "c360_..."', or 'check constraint "c360_..." of relation "y" is
    violated by some row' when the rule is new), and the table keeps its previous content. -#}

{#- The CHECK constraint a row test amounts to, as {'name', 'check'}; none when it has none (or
    when its arguments are not plain: a jinja expression, a quoted column name). -#}
{% macro row_rule(test_name, column_name, kwargs) -%}
    {%- set column = (column_name or '') | string -%}
    {%- if column and not modules.re.fullmatch('[a-z_][a-z0-9_]*', column) -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if test_name == 'accepted_values' -%}
        {%- set values = kwargs.get('values') -%}
        {%- if not column or values is none or values is string or values | length == 0 -%}
            {{ return(none) }}
        {%- endif -%}
        {%- set items = [] -%}
        {%- for value in values -%}
            {%- if '{{' in value | string or '{%' in value | string -%}
                {{ return(none) }}
            {%- endif -%}
            {%- do items.append("'" ~ (value | string | replace("'", "''")) ~ "'" if kwargs.get('quote', true) else value | string) -%}
        {%- endfor -%}
        {%- set check = column ~ ' in (' ~ items | join(', ') ~ ')' -%}
    {%- elif test_name == 'expression_is_true' -%}
        {%- set expression = kwargs.get('expression') | string -%}
        {%- set where_clause = kwargs.get('where_clause') -%}
        {#- a CHECK sees one row, when it is written: nothing that reads other rows, the clock or
            chance, and nothing jinja still has to render -#}
        {%- set unfit = '(?is)\{\{|\{%|\b(select|now|current_\w+|localtime\w*|clock_timestamp|statement_timestamp|transaction_timestamp|timeofday|random|nextval|currval)\b' -%}
        {%- if modules.re.search(unfit, expression ~ ' ' ~ (where_clause or '')) -%}
            {{ return(none) }}
        {%- endif -%}
        {%- set check = 'coalesce((' ~ expression ~ '), false)' -%}
        {%- if where_clause -%}
            {%- set check = check ~ ' or not coalesce((' ~ where_clause ~ '), false)' -%}
        {%- endif -%}
    {%- elif test_name == 'is_e164' and column -%}
        {%- set prefix = kwargs.get('country_prefix') -%}
        {%- set check = column ~ " is null or (" ~ column ~ " ~ " ~ e164_pattern() -%}
        {%- if prefix -%}
            {%- set check = check ~ " and left(" ~ column ~ ", " ~ (prefix | length) ~ ") = '" ~ prefix ~ "'" -%}
        {%- endif -%}
        {%- set check = check ~ ")" -%}
    {%- elif test_name == 'is_valid_uscc' and column -%}
        {%- set check = column ~ ' is null or ' ~ uscc_is_valid(column) -%}
    {%- else -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set label = test_name ~ ('_' ~ column if column else '') -%}
    {{ return({'name': 'c360_' ~ label[:45] ~ '_' ~ local_md5(check)[:10], 'check': check}) }}
{%- endmacro %}

{#- SQL condition, true when the table `model` has the validated CHECK constraint `rule`. -#}
{% macro row_rule_condition(model, rule) -%}
    exists (
        select
        from pg_constraint
        where
            conrelid = {{ regclass_of(model) }}
            and conname = '{{ rule.name }}'
            and contype = 'c'
            and convalidated
    )
{%- endmacro %}

{#- True when, as the test is rendered, `model` is a relation with the CHECK constraint `rule`. -#}
{% macro enforced_row_rule(model, rule) -%}
    {%- if not execute or not rule or should_store_failures() or model is string or model.identifier is not defined -%}
        {{ return(false) }}
    {%- endif -%}
    {%- set found = run_query('select ' ~ row_rule_condition(model, rule)) -%}
    {{ return(found.columns[0].values()[0] == true) }}
{%- endmacro %}

{#- A row test's catalog check: one failing row, naming the constraint, when it is missing. -#}
{% macro row_rule_catalog_check(model, rule, column_alias) -%}
-- row rule enforced by check constraint {{ rule.name }}: {{ rule.check | replace('\n', ' ') }}
select '{{ rule.name }}: no validated check constraint of that name' as {{ column_alias }}
where not {{ row_rule_condition(model, rule) }}
{%- endmacro %}

{% macro default__test_accepted_values(model, column_name, values, quote=True) %}
    {%- set rule = row_rule('accepted_values', column_name, {'values': values, 'quote': quote}) %}
    {%- if enforced_row_rule(model, rule) %}
{{ row_rule_catalog_check(model, rule, 'value_field') }}
    {%- else %}
{{ dbt.default__test_accepted_values(model, column_name, values, quote) }}
    {%- endif %}
{% endmacro %}

{#- Post-hook: the CHECK constraints of this table's row tests (row_rule): adds the missing ones
    (one validating scan), drops those of tests that are gone or changed; nothing (no ALTER, no lock;
    one catalog query as the hook is rendered) when they are in place, as on every incremental run
    after the first. -#}
{% macro enforce_tested_row_rules() -%}
    {%- if not execute or model.config.materialized not in ('table', 'incremental') -%}
        {{ return('') }}
    {%- endif -%}
    {%- set wanted = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'test' and node.attached_node == model.unique_id -%}
        {%- set meta = node.test_metadata or {} -%}
        {%- if meta.get('name') in ('accepted_values', 'expression_is_true', 'is_e164', 'is_valid_uscc')
              and (node.config.severity | lower) == 'error' and not node.config.where -%}
            {%- set rule = row_rule(meta.get('name'), node.column_name, meta.get('kwargs') or {}) -%}
            {%- if rule -%}
                {%- do wanted.update({rule.name: rule.check}) -%}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set existing_query -%}
        select conname::text from pg_constraint
        where conrelid = {{ regclass_of(this) }} and contype = 'c' and conname like 'c360\_%'
    {%- endset -%}
    {%- set existing = run_query(existing_query).columns[0].values() | list -%}
    {%- set drops = existing | reject('in', wanted) | list -%}
    {%- set adds = wanted.keys() | reject('in', existing) | list -%}
    {%- if not drops and not adds -%}
        {{ return('') }}
    {%- endif -%}
    alter table {{ this }}
    {%- for name in drops %}
        drop constraint {{ adapter.quote(name) }}{{ "," if not loop.last or adds }}
    {%- endfor %}
    {%- for name in adds | sort %}
        add constraint {{ adapter.quote(name) }} check ({{ wanted[name] }}){{ "," if not loop.last }}
    {%- endfor %}
{%- endmacro %}

{#- The E.164 pattern ('+', country code and subscriber number: 8-15 digits) as a SQL literal: the
    is_e164 test's scan and its CHECK constraint. -#}
{% macro e164_pattern() -%}
    '^\+[1-9][0-9]{7,14}$'
{%- endmacro %}
