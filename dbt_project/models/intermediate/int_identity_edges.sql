{#- First identity step: exact matches on a valid USCC, a valid ID number, a mobile, an email or a
    company-name key. Guards against over-linking:
    - a value shared by more than var('identity_max_records_per_value') records (switchboard numbers,
      placeholder emails such as test@test.com) links nothing;
    - mobile, email and name matches only link records of the same customer type;
    - no edge between two records holding different valid USCCs or different valid ID numbers. -#}
with records as (
    select * from {{ ref('int_customer_records') }}
),

match_values as (
    select customer_record_id, customer_type, uscc, id_card_no, 'uscc' as matched_on, uscc as match_value
    from records
    where uscc is not null

    union all

    select customer_record_id, customer_type, uscc, id_card_no, 'id_card_no', id_card_no
    from records
    where id_card_no is not null

    union all

    select customer_record_id, customer_type, uscc, id_card_no, 'mobile', mobile_e164
    from records
    where mobile_e164 is not null

    union all

    select customer_record_id, customer_type, uscc, id_card_no, 'email', email
    from records
    where email is not null

    union all

    select customer_record_id, customer_type, uscc, id_card_no, 'company_name', name_match_key
    from records
    where
        customer_type = 'company'
        and char_length(name_match_key) >= {{ var('identity_min_name_key_length') }}
),

value_counts as (
    select
        matched_on,
        match_value,
        count(distinct customer_record_id) as record_count
    from match_values
    group by matched_on, match_value
),

usable_values as (
    select match_values.*
    from match_values
    inner join value_counts
        on
            match_values.matched_on = value_counts.matched_on
            and match_values.match_value = value_counts.match_value
    where value_counts.record_count between 2 and {{ var('identity_max_records_per_value') }}
),

pairs as (
    select
        a.customer_record_id as record_id_a,
        b.customer_record_id as record_id_b,
        a.matched_on,
        a.match_value
    from usable_values as a
    inner join usable_values as b
        on
            a.matched_on = b.matched_on
            and a.match_value = b.match_value
            and a.customer_record_id < b.customer_record_id
    where
        (a.matched_on in ('uscc', 'id_card_no') or a.customer_type = b.customer_type)
        and not coalesce(a.uscc <> b.uscc, false)
        and not coalesce(a.id_card_no <> b.id_card_no, false)
),

final as (
    select
        md5(record_id_a || '|' || record_id_b || '|' || matched_on) as edge_id,
        record_id_a,
        record_id_b,
        matched_on,
        match_value
    from pairs
)

select * from final
