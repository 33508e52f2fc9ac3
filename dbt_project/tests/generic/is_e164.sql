{#- Fails on values that are not E.164 ('+' country code and subscriber number, 8-15 digits),
    optionally restricted to one country prefix such as '+86'. Nulls pass. On a table holding the
    rule as a CHECK constraint, a catalog check (macros/enforced_tests.sql). -#}
{% test is_e164(model, column_name, country_prefix=none) %}
{%- set rule = row_rule('is_e164', column_name, {'country_prefix': country_prefix}) %}
{%- if enforced_row_rule(model, rule) %}
{{ row_rule_catalog_check(model, rule, column_name) }}
{%- else %}
select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and (
        {{ column_name }} !~ {{ e164_pattern() }}
        {%- if country_prefix %}
        or left({{ column_name }}, {{ country_prefix | length }}) <> '{{ country_prefix }}'
        {%- endif %}
    )
{%- endif %}
{% endtest %}
