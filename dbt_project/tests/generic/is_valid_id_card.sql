{#- Fails on resident ID numbers that fail the GB 11643-1999 checksum. Nulls pass. -#}
{% test is_valid_id_card(model, column_name) %}
select {{ column_name }}
from {{ model }}
where {{ column_name }} is not null and not {{ id_card_is_valid(column_name) }}
{% endtest %}
