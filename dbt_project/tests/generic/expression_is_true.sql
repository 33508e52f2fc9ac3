{#- Fails on rows where the SQL boolean expression is not true (optionally only rows matching
    `where`). Works on a model or on a column (then the expression may use the column). -#}
{% test expression_is_true(model, expression, column_name=none, where_clause=none) %}
select *
from {{ model }}
where
    not coalesce(({{ expression }}), false)
    {%- if where_clause %}
    and ({{ where_clause }})
    {%- endif %}
{% endtest %}
