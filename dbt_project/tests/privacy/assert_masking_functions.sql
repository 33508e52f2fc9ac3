{#- The masking functions of macro create_masking_functions on their edge cases: a row is a case
    whose masked value differs from the expected one (null expected means null). -#}

with cases (fn, input, type_arg, expected) as (
    values
        ('phone', '+8613812345678', null, '138****5678'),
        ('phone', '13812345678', null, '138****5678'),
        ('phone', '+86 138 1234 5678', null, '138****5678'),
        ('phone', '0086-13812345678', null, '138****5678'),
        ('phone', '8613812345678', null, '138****5678'),
        ('phone', '+8675512345678', null, '075****5678'),
        ('phone', '010-12345678', null, '010****5678'),
        ('phone', '+12025550123', null, '+120****0123'),
        ('phone', '95588', null, '****88'),
        ('phone', '123', null, '****'),
        ('phone', 'n/a', null, '****'),
        ('phone', null, null, null),
        ('email', 'zhang.san@example.com', null, 'z***@example.com'),
        ('email', '@example.com', null, '***@example.com'),
        ('email', '张三@例子.中国', null, '张***@例子.中国'),
        ('email', 'not-an-email', null, '***'),
        ('email', null, null, null),
        ('name', '张三', null, '张*'),
        ('name', '张三丰', null, '张*丰'),
        ('name', '欧阳娜娜', null, '欧**娜'),
        ('name', '张', null, '*'),
        ('name', 'John Smith', null, 'J********h'),
        ('name', null, null, null),
        ('customer_name', '深圳市腾达科技有限公司', 'company', '深圳市腾达科技有限公司'),
        ('customer_name', '李小龙', 'person', '李*龙'),
        ('customer_name', '李小龙', null, '李*龙'),
        ('address', '广东省深圳市南山区科技园路1号', null, '广东省深圳市南山区****'),
        ('address', '北京市朝阳区建国路88号', null, '北京市朝阳区****'),
        ('address', '某某路12号', null, '****'),
        ('address', null, null, null),
        ('text', '13812345678', null, '1***'),
        ('text', null, null, null)
),

masked as (
    select
        *,
        case fn
            when 'phone' then privacy.mask_phone(input)
            when 'email' then privacy.mask_email(input)
            when 'name' then privacy.mask_name(input)
            when 'customer_name' then privacy.mask_customer_name(input, type_arg)
            when 'address' then privacy.mask_address(input)
            when 'text' then privacy.mask_text(input)
        end as actual
    from cases
)

select * from masked
where actual is distinct from expected
