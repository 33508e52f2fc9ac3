{#- Personal-data protection for the read layers (bi, analyst): masking functions and the macro
    that writes a mart's masked select list from the column metadata (meta.pii, meta.pii_kind).

    meta.pii    none     -> the column as is
                contact  -> masked by the function of its meta.pii_kind; no kind, no build
                identity -> left out, unless its pii_kind has a rule (customer_name: a company's
                            name is shown, a person's masked)
    A new contact column without a pii_kind therefore fails the build instead of leaking. -#}

{#- pii_kind -> masking function (schema privacy, created on-run-start). -#}
{% macro masking_rules() -%}
    {{ return({
        'phone': 'privacy.mask_phone',
        'email': 'privacy.mask_email',
        'person_name': 'privacy.mask_name',
        'address': 'privacy.mask_address',
        'text': 'privacy.mask_text',
    }) }}
{%- endmacro %}

{#- The masked select list of a model: one expression per documented column, in yml order (the
    marts' enforced contracts keep that equal to the table). -#}
{% macro masked_columns(model_name, relation_alias='m') %}
    {%- set node = graph.nodes.get('model.' ~ project_name ~ '.' ~ model_name)
        or graph.nodes.get('snapshot.' ~ project_name ~ '.' ~ model_name) -%}
    {%- if node is none -%}
        {{ exceptions.raise_compiler_error('masked_columns: no model or snapshot named ' ~ model_name) }}
    {%- endif -%}
    {%- set rules = masking_rules() -%}
    {%- set names = node.columns.keys() | list -%}
    {%- set out = [] -%}
    {%- for name, column in node.columns.items() -%}
        {%- set meta = column.config.get('meta', {}) if column.config is mapping else {} -%}
        {%- set meta = meta or column.meta or {} -%}
        {%- set pii = meta.get('pii') -%}
        {%- set kind = meta.get('pii_kind') -%}
        {%- set col = relation_alias ~ '.' ~ adapter.quote(name) -%}
        {%- if pii == 'none' -%}
            {%- do out.append(col ~ ' as ' ~ adapter.quote(name)) -%}
        {%- elif pii == 'contact' -%}
            {%- if kind not in rules -%}
                {{ exceptions.raise_compiler_error(
                    model_name ~ '.' ~ name ~ ' is personal data (meta.pii: contact) without a masking rule: '
                    ~ 'give it meta.pii_kind (one of ' ~ (rules.keys() | list | join(', '))
                    ~ ') so the bi/analyst views can mask it; it is not exposed unmasked.') }}
            {%- endif -%}
            {%- do out.append(rules[kind] ~ '(' ~ col ~ ') as ' ~ adapter.quote(name)) -%}
        {%- elif pii == 'identity' -%}
            {%- if kind == 'customer_name' -%}
                {%- if 'customer_type' not in names -%}
                    {{ exceptions.raise_compiler_error(
                        model_name ~ '.' ~ name ~ ': pii_kind customer_name needs a customer_type column') }}
                {%- endif -%}
                {%- do out.append('privacy.mask_customer_name(' ~ col ~ ', ' ~ relation_alias ~ '.customer_type) as '
                    ~ adapter.quote(name)) -%}
            {%- endif -%}
            {#- any other identity column (ID hash, USCC) is not exposed -#}
        {%- else -%}
            {{ exceptions.raise_compiler_error(
                model_name ~ '.' ~ name ~ ': meta.pii is ' ~ pii ~ ', not none / contact / identity') }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(out) }}
{% endmacro %}

{#- The whole body of a masked view over a mart: `{{ masked_view('customer_360') }}`. -#}
{% macro masked_view(model_name) -%}
    {%- set upstream = ref(model_name) -%}
    {%- if execute -%}
        {%- set columns = masked_columns(model_name) -%}
select
    {{ columns | join(',\n    ') }}
from {{ upstream }} as m
    {%- else -%}
select 1 from {{ upstream }}
    {%- endif -%}
{%- endmacro %}

{#- The column names a masked view of `model_name` exposes (its documented columns less the
    identity columns without a rule), for the yml generator's check and tests. -#}
{% macro exposed_column_names(model_name) -%}
    {%- set out = [] -%}
    {%- for expr in masked_columns(model_name) -%}
        {%- do out.append(expr.split(' as ')[-1] | replace('"', '')) -%}
    {%- endfor -%}
    {{ return(out) }}
{%- endmacro %}

{#- on-run-start: the masking functions. Immutable and null-safe; each keeps just enough to
    recognise a value (the last four digits of a phone, the first letter and domain of an email,
    a surname, a district) and never the length of what it hides beyond that. -#}
{% macro create_masking_functions() %}
    create schema if not exists privacy;

    -- 13812345678, +86 138 1234 5678, 0086-138..., +8675512345678 -> 138****5678 / 075****5678
    -- (+86 numbers are shown nationally, a landline with its trunk 0); another country's number
    -- keeps its plus (+120****0123); a short number (5 to 7 digits, 95588) keeps its last 2;
    -- anything shorter, or without digits, is all stars.
    create or replace function privacy.mask_phone(value text) returns text
    language plpgsql immutable parallel safe
    as $fn$
    declare
        digits text := regexp_replace(coalesce(value, ''), '[^0-9]', '', 'g');
        plus text := '';
    begin
        if value is null then
            return null;
        end if;
        if value ~ '^\s*(\+|00)86' or (digits ~ '^86' and length(digits) >= 12) then
            digits := regexp_replace(digits, '^(0086|86)', '');
            -- a landline after the country code lost its trunk 0 (+86 10 ..., +86 755 ...)
            if digits !~ '^0' and digits !~ '^1[3-9][0-9]{9}$' then
                digits := '0' || digits;
            end if;
        elsif value ~ '^\s*\+' then
            plus := '+';
        end if;
        return case
            when length(digits) >= 8 then plus || left(digits, 3) || '****' || right(digits, 4)
            when length(digits) >= 5 then plus || '****' || right(digits, 2)
            else '****'
        end;
    end
    $fn$;

    -- zhang.san@example.com -> z***@example.com; '@example.com' -> ***@example.com;
    -- not an email at all -> ***
    create or replace function privacy.mask_email(value text) returns text
    language sql immutable parallel safe
    as $fn$
        select case
            when value is null then null
            when position('@' in value) = 0 then '***'
            else left(split_part(value, '@', 1), 1) || '***@'
                || substr(value, length(split_part(value, '@', 1)) + 2)
        end
    $fn$;

    -- 张三 -> 张*, 张三丰 -> 张*丰, 欧阳娜娜 -> 欧**娜, John Smith -> J********h; one character -> *
    create or replace function privacy.mask_name(value text) returns text
    language sql immutable parallel safe
    as $fn$
        select case
            when value is null then null
            when length(btrim(value)) = 0 then ''
            when length(btrim(value)) = 1 then '*'
            when length(btrim(value)) = 2 then left(btrim(value), 1) || '*'
            else left(btrim(value), 1) || repeat('*', length(btrim(value)) - 2) || right(btrim(value), 1)
        end
    $fn$;

    -- A company's name is business information and shown; a person's (or an unknown type's) is masked.
    create or replace function privacy.mask_customer_name(value text, customer_type text) returns text
    language sql immutable parallel safe
    as $fn$
        select case when customer_type = 'company' then value else privacy.mask_name(value) end
    $fn$;

    -- Keeps the address down to its district or county (广东省深圳市南山区****), else its first
    -- six characters; the street, number and room never show.
    create or replace function privacy.mask_address(value text) returns text
    language sql immutable parallel safe
    as $fn$
        select case
            when value is null then null
            when length(btrim(value)) = 0 then ''
            when btrim(value) ~ '^.{2,20}?(区|县|旗)' and length(substring(btrim(value) from '^.{2,20}?(?:区|县|旗)')) < length(btrim(value))
                then substring(btrim(value) from '^.{2,20}?(?:区|县|旗)') || '****'
            when length(btrim(value)) > 6 then left(btrim(value), 6) || '****'
            else '****'
        end
    $fn$;

    -- Free text that may hold any personal value (an attribute's value in the identity marts).
    create or replace function privacy.mask_text(value text) returns text
    language sql immutable parallel safe
    as $fn$
        select case when value is null then null when value = '' then '' else left(value, 1) || '***' end
    $fn$;
{% endmacro %}

{#- Column comments carry the Chinese label and the description ('客户名称：Customer name ...'),
    table comments the model's label and description, so a BI tool's column picker speaks Chinese. -#}
{% macro postgres__persist_docs(relation, model, for_relation, for_columns) -%}
    {%- set model_meta = model.config.get('meta', {}) or model.get('meta', {}) or {} -%}
    {% if for_relation and config.persist_relation_docs() and model.description %}
        {%- set label = model_meta.get('label_zh') -%}
        {% do run_query(alter_relation_comment(relation, (label ~ '：' if label else '') ~ model.description)) %}
    {% endif %}
    {% if for_columns and config.persist_column_docs() and model.columns %}
        {% set existing_columns = adapter.get_columns_in_relation(relation) | map(attribute="name") | list %}
        {% set labelled = {} %}
        {% for name, column in model.columns.items() if name in existing_columns %}
            {%- set meta = (column.get('config') or {}).get('meta') or column.get('meta') or {} -%}
            {%- set label = meta.get('label_zh') -%}
            {%- set comment = (label ~ '：' if label else '') ~ (column.get('description') or '') -%}
            {% do labelled.update({name: {'description': comment, 'quote': column.get('quote')}}) %}
        {% endfor %}
        {% if labelled %}
            {% do run_query(alter_column_comment(relation, labelled)) %}
        {% endif %}
    {% endif %}
{%- endmacro %}
