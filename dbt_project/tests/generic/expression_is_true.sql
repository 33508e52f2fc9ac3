{#- Fails on rows where the SQL boolean expression is not true (optionally only rows matching
    `where`). Works on a model or on a column (then the expression may use the column). On a table
    holding the rule as a CHECK constraint, a catalog check (macros/enforced_tests.sql). -#}
{% test expression_is_true(model, expression, column_name=none, where_clause=none) %}
{%- set rule = row_rule('expression_is_true', column_name, {'expression': expression, 'where_clause': where_clause}) %}
{%- if enforced_row_rule(model, rule) %}
{{ row_rule_catalog_check(model, rule, 'missing_check') }}
{%- else %}
select *
from {{ model }}
where
    not coalesce(({{ expression }}), false)
    {%- if where_clause %}
    and ({{ where_clause }})
    {%- endif %}
{%- endif %}
{% endtest %}
