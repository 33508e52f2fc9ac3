{#- Fails on unified social credit codes that fail the GB 32100-2015 checksum. Nulls pass. -#}
{% test is_valid_uscc(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and not {{ uscc_is_valid(column_name) }}
{% endtest %}
