{#- Unified social credit code (统一社会信用代码, GB 32100-2015) and resident ID number
    (居民身份证号码, GB 11643-1999): standardisation and checksum validation as SQL expressions. -#}

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

{#- Upper-case (x -> X), half-width, no spaces; empty -> null. -#}
{% macro normalize_id_card(expr) -%}
    nullif(upper(regexp_replace({{ fullwidth_to_ascii(expr) }}, '[\s-]', '', 'g')), '')
{%- endmacro %}

{#- GB 11643-1999: 17 digits (6 area, 8 birth date, 3 sequence) + check character
    '10X98765432'[sum(d_i * w_i) mod 11]. The birth date must look like a real 19xx/20xx date. -#}
{% macro id_card_is_valid(expr) -%}
    {%- set weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] -%}
    coalesce(case
        when {{ expr }} ~ '^[1-9][0-9]{5}(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9X]$' then
            substr('10X98765432', (
                {%- for w in weights %}
                substr({{ expr }}, {{ loop.index }}, 1)::int * {{ w }}{{ ' +' if not loop.last }}
                {%- endfor %}
            ) % 11 + 1, 1) = substr({{ expr }}, 18, 1)
    end, false)
{%- endmacro %}

{#- A resident ID number is personal data: the warehouse keeps only this salted SHA-256 (hex) of a
    valid one, enough to match on, useless to read. The salt comes from the environment
    (C360_PII_SALT, made per installation by `make` and kept out of the repo). -#}
{% macro pii_hash(expr) -%}
    encode(sha256(convert_to('{{ env_var("C360_PII_SALT") }}' || {{ expr }}, 'UTF8')), 'hex')
{%- endmacro %}
