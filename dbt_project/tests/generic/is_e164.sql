{#- Fails on values that are not E.164 ('+' country code and subscriber number, 8-15 digits),
    optionally restricted to one country prefix such as '+86'. Nulls pass. -#}
{% test is_e164(model, column_name, country_prefix=none) %}
select {{ column_name }}
from {{ model }}
where
    {{ column_name }} is not null
    and (
        {{ column_name }} !~ '^\+[1-9][0-9]{7,14}$'
        {%- if country_prefix %}
        or left({{ column_name }}, {{ country_prefix | length }}) <> '{{ country_prefix }}'
        {%- endif %}
    )
{% endtest %}
