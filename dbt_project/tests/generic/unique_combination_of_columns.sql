{#- Fails on each combination of `combination_of_columns` that occurs more than once (nulls count as
    equal). Where a unique index on exactly these columns enforces it (macros/enforced_tests.sql),
    a catalog check that fails when the index is gone. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}
{%- if enforced_property(model, combination_of_columns, 'unique_combination') %}
-- uniqueness enforced by a unique index on exactly these columns (catalog check, no table scan)
select '{{ combination_of_columns | join(", ") }}: no valid unique index on exactly these' as missing_unique_index
where not {{ enforced_condition(model, combination_of_columns, 'unique_combination') }}
{%- else %}
select
    {{ combination_of_columns | join(', ') }},
    count(*) as occurrences
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{%- endif %}
{% endtest %}
