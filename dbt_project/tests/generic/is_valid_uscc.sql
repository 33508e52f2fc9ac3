{#- Fails on unified social credit codes that fail the GB 32100-2015 checksum. Nulls pass. On a
    table holding the rule as a CHECK constraint, a catalog check (macros/enforced_tests.sql). -#}
{% test is_valid_uscc(model, column_name) %}
{%- set rule = row_rule('is_valid_uscc', column_name, {}) %}
{%- if enforced_row_rule(model, rule) %}
{{ row_rule_catalog_check(model, rule, column_name) }}
{%- else %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and not {{ uscc_is_valid(column_name) }}
{%- endif %}
{% endtest %}
