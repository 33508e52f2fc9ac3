{#- Shared pieces of the issue-5 business rules (marts, customer 360, alerts). -#}

{#- The day the rules are evaluated for: var `as_of_date` (YYYY-MM-DD) when set, else today. Tests and
    backfills pin it so "within 90 days" means the same thing on every run. -#}
{% macro as_of_date() -%}
    {%- if var('as_of_date', none) -%}
        date '{{ var("as_of_date") }}'
    {%- else -%}
        current_date
    {%- endif -%}
{%- endmacro %}

{#- Amount in CNY at the fixed planning rate of var `fx_to_cny` (null for a currency without a rate). -#}
{% macro to_cny(amount_expr, currency_expr) -%}
    ({{ amount_expr }} * (case coalesce({{ currency_expr }}, 'CNY')
        {%- for currency, rate in var('fx_to_cny').items() %}
        when '{{ currency }}' then {{ rate }}
        {%- endfor %}
    end))::numeric(18, 2)
{%- endmacro %}

{#- An amount as text for people: thousands grouped, two decimals (1200 -> '1,200.00'), as the
    dashboards' tables show amounts; '-' for none. -#}
{% macro amount_text(amount_expr) -%}
    coalesce(to_char({{ amount_expr }}, 'FM999,999,999,999,999,990.00'), '-')
{%- endmacro %}

{#- A ticket category that is a complaint (the call center types it in English or Chinese). -#}
{% macro is_complaint(category_expr) -%}
    (lower(coalesce({{ category_expr }}, '')) in ('complaint', '投诉'))
{%- endmacro %}
