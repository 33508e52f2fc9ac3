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
    this project before dbt's global macros). -#}

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
    statement, no lock) when they all are, as on every incremental run after the first. -#}
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
