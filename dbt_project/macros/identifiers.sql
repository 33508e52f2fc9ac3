{#- Unified social credit code (统一社会信用代码, GB 32100-2015): standardisation and checksum
    validation as SQL expressions. (Resident ID numbers are checked and hashed before landing, in
    include/identity/pii.py: the warehouse never holds them.) -#}

{#- Upper-case, half-width, no spaces or dashes; empty -> null. -#}
{% macro normalize_uscc(expr) -%}
    nullif(upper(regexp_replace({{ fullwidth_to_ascii(expr) }}, '[\s-]', '', 'g')), '')
{%- endmacro %}

{#- GB 32100-2015: 18 characters from 0-9A-HJ-NPQRTUWXY (31 symbols, I O Z S V excluded), the 18th a
    check character: 31 - (sum of value(c_i) * w_i over the first 17) mod 31, where 31 means 0. -#}
{% macro uscc_is_valid(expr) -%}
    {%- set charset = '0123456789ABCDEFGHJKLMNPQRTUWXY' -%}
    {%- set weights = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28] -%}
    coalesce(case
        when {{ expr }} ~ '^[0-9A-HJ-NPQRTUWXY]{18}$' then
            substr('{{ charset }}', (31 - (
                {%- for w in weights %}
                (strpos('{{ charset }}', substr({{ expr }}, {{ loop.index }}, 1)) - 1) * {{ w }}{{ ' +' if not loop.last }}
                {%- endfor %}
            ) % 31) % 31 + 1, 1) = substr({{ expr }}, 18, 1)
    end, false)
{%- endmacro %}
