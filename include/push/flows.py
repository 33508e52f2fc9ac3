"""Planners: per flow, the payload each target record should have, as one SQL query.

Every planner returns the columns ``target, record_key, customer_key, payload (jsonb),
expected_version (timestamptz)``:

- ``record_key``: the target's record id for updates; for creates, our own business key (the
  ``customer_key``), since the target assigns the id.
- ``payload``: the desired field values. Nulls are dropped by the engine unless the flow sets
  ``nulls_overwrite`` (erasure), so a missing golden value never blanks a good one.
- ``expected_version``: the target record's updated-at as we last read it (staging), for conflict
  detection; null means "no check" (creates, erasure: a deletion request overrides any edit).

Planners read only the public marts (``marts.dim_customer``, ``marts.customer_crosswalk``),
staging views of the target systems (our last read of them) and ``ops`` tables; never the
intermediate identity models, which are the identity-resolution layer's internals.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from psycopg import sql

if TYPE_CHECKING:
    from include.push.targets import Flow

ERASED_NAME = "已删除客户"
_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")

# Raw phone text from the call center as E.164 (+86...), the form the targets validate. Anything
# else is passed through as typed, so the target rejects it and it lands in ops.sync_rejects.
_E164 = """case
    when regexp_replace({v}, '\\D', '', 'g') ~ '^1[3-9]\\d{{9}}$' then '+86' || regexp_replace({v},
        '\\D', '', 'g')
    when regexp_replace({v}, '\\D', '', 'g') ~ '^861[3-9]\\d{{9}}$' then '+' || regexp_replace({v},
        '\\D', '', 'g')
    else {v}
end"""


def _not_erased(alias: str) -> sql.Composable:
    return sql.SQL(
        "not exists (select 1 from ops.erasure_requests e where e.customer_key = {}.customer_key)"
    ).format(sql.Identifier(alias))


def _not_tombstoned(system: str, alias: str, column: str) -> sql.Composable:
    """The source record did not belong to an erased customer (its key may have changed since)."""
    return sql.SQL(
        "not exists (select 1 from ops.erasure_tombstones t "
        "where t.source_system = {} and t.source_record_id = {})"
    ).format(sql.Literal(system), sql.Identifier(alias, column))


def crm_golden_contacts(flow: Flow) -> sql.Composable:
    """Golden phone (mobile first) and email, the customer_key and tags, per CRM account."""
    columns = flow.options.get("tag_columns", ["customer_type", "source_systems"])
    for column in columns:
        if not _IDENT.match(column):
            raise ValueError(f"flow {flow.name}: tag column {column!r} is not a plain column name")
    tags = sql.SQL(", ").join(
        sql.SQL("{} || ':' || d.{}::text").format(sql.Literal(c), sql.Identifier(c)) for c in columns
    )
    return sql.SQL(
        """
select 'crm_accounts' as target,
       x.source_record_id as record_key,
       d.customer_key,
       jsonb_build_object(
           'phone', coalesce(d.mobile_e164, d.phone_e164),
           'email', d.email,
           'c360_customer_key', d.customer_key,
           'c360_tags', to_jsonb(array_remove(array[{tags}]::text[], null))
       ) as payload,
       a.source_updated_at as expected_version
from marts.customer_crosswalk x
join marts.dim_customer d on d.customer_key = x.customer_key
join staging.stg_crm__accounts a on a.account_id = x.source_record_id
where x.source_system = 'crm' and {not_erased} and {not_tombstoned}
"""
    ).format(
        tags=tags if columns else sql.SQL(""),
        not_erased=_not_erased("d"),
        not_tombstoned=_not_tombstoned("crm", "x", "source_record_id"),
    )


_IMPORTANT_NEW = """
with crm_customers as (
    select x.customer_key, x.source_record_id as account_id
    from marts.customer_crosswalk x where x.source_system = 'crm' and {not_tombstoned}
),
pipeline as (
    select c.customer_key, sum(o.amount) as open_amount
    from staging.stg_crm__opportunities o
    join crm_customers c on c.account_id = o.account_id
    where o.stage not in ('closed_won', 'closed_lost') and o.amount is not null
    group by c.customer_key
),
important as (
    select d.*, p.open_amount
    from marts.dim_customer d
    join pipeline p on p.customer_key = d.customer_key
    where p.open_amount >= {min_amount}
      and not exists (select 1 from marts.customer_crosswalk e
                      where e.customer_key = d.customer_key and e.source_system = 'erp')
      and {not_erased}
)
"""


def _important(flow: Flow) -> sql.Composable:
    amount = flow.options.get("min_opportunity_amount", 500000)
    if not isinstance(amount, int | float) or amount < 0:
        raise ValueError(f"flow {flow.name}: min_opportunity_amount must be a non-negative number")
    return sql.SQL(_IMPORTANT_NEW).format(
        min_amount=sql.Literal(amount),
        not_erased=_not_erased("d"),
        not_tombstoned=_not_tombstoned("crm", "x", "source_record_id"),
    )


def important_new_customers_erp(flow: Flow) -> sql.Composable:
    """An ERP customer-master record for each new important CRM customer. No resident ID number:
    the warehouse holds only its hash (include/identity/pii.py); finance collects it itself."""
    return _important(flow) + sql.SQL(
        """
select 'erp_customer_master' as target, i.customer_key as record_key, i.customer_key,
       jsonb_build_object(
           'cust_name', i.customer_name,
           'cust_type', case i.customer_type when 'company' then '企业' else '个人' end,
           'tax_no', i.uscc,
           'contact_tel', coalesce(i.mobile_e164, i.phone_e164),
           'contact_email', i.email,
           'reg_address', i.address,
           'province', i.province,
           'city', i.city
       ) as payload,
       null::timestamptz as expected_version
from important i
"""
    )


def important_new_customers_oa(flow: Flow) -> sql.Composable:
    """A pending contract-approval request in OA for each new important CRM customer."""
    return _important(flow) + sql.SQL(
        """
select 'oa_contract_approvals' as target, i.customer_key as record_key, i.customer_key,
       jsonb_build_object(
           'archive_id', (select min(a.source_record_id) from marts.customer_crosswalk a
                          where a.customer_key = i.customer_key and a.source_system = 'oa'),
           'contract_no', 'C360-' || i.customer_key,
           'contract_amount', i.open_amount,
           'status', 'pending'
       ) as payload,
       null::timestamptz as expected_version
from important i
"""
    )


#: Call-center field -> the field holding it in each target.
CONTACT_FIELDS = {
    "crm_accounts": {"address": "address"},  # phone and email reach the CRM via the golden record
    "erp_customer_master": {"phone": "contact_tel", "email": "contact_email", "address": "reg_address"},
    "oa_customer_archive": {"phone": "contact_phone", "email": "contact_email", "address": "address"},
}


def callcenter_contact_changes(flow: Flow) -> sql.Composable:
    """The newest call-center change per customer and field, to each other system's records."""
    mapping = sql.SQL(" union all ").join(
        sql.SQL("select {}, {}, {}").format(sql.Literal(t), sql.Literal(f), sql.Literal(col))
        for t, fields in CONTACT_FIELDS.items()
        for f, col in fields.items()
    )
    value = sql.SQL(_E164.format(v="c.new_value"))
    return sql.SQL(
        """
with changes as (
    select distinct on (x.customer_key, c.changed_field)
           x.customer_key, c.changed_field,
           case when c.changed_field = 'phone' then {value} else nullif(btrim(c.new_value), '') end
               as new_value,
           c.changed_at
    from staging.stg_callcenter__contact_changes c
    join marts.customer_crosswalk x on x.source_system = 'callcenter' and x.source_record_id = c.caller_id
    where c.changed_field in ('phone', 'email', 'address') and c.changed_at is not null
    order by x.customer_key, c.changed_field, c.changed_at desc, c.change_id desc
),
field_map (target, changed_field, target_field) as ({mapping}),
holders as (
    select 'crm_accounts' as target, a.account_id as record_key, x.customer_key,
           a.source_updated_at as version
    from marts.customer_crosswalk x join staging.stg_crm__accounts a on a.account_id = x.source_record_id
    where x.source_system = 'crm'
    union all
    select 'erp_customer_master', m.customer_id, x.customer_key, m.source_updated_at
    from marts.customer_crosswalk x join staging.stg_erp__customer_master m on m.customer_id =
        x.source_record_id
    where x.source_system = 'erp'
    union all
    select 'oa_customer_archive', o.archive_id, x.customer_key, o.source_updated_at
    from marts.customer_crosswalk x join staging.stg_oa__customer_archive o on o.archive_id =
        x.source_record_id
    where x.source_system = 'oa'
)
select h.target, h.record_key, h.customer_key,
       jsonb_object_agg(m.target_field, c.new_value order by m.target_field) as payload,
       h.version as expected_version
from holders h
join changes c on c.customer_key = h.customer_key
join field_map m on m.target = h.target and m.changed_field = c.changed_field
where (h.version is null or c.changed_at > h.version) and {not_erased}
  and not exists (select 1 from ops.erasure_tombstones t
                  where t.source_system = split_part(h.target, '_', 1) and t.source_record_id = h.record_key)
group by h.target, h.record_key, h.customer_key, h.version
"""
    ).format(value=value, mapping=mapping, not_erased=_not_erased("h"))


#: Staging relation and record id of each system's customer records, for the contacts they hold.
CUSTOMER_RECORDS = {
    "crm": ("stg_crm__accounts", "account_id"),
    "erp": ("stg_erp__customer_master", "customer_id"),
    "oa": ("stg_oa__customer_archive", "archive_id"),
    "callcenter": ("stg_callcenter__callers", "caller_id"),
    "marketing": ("stg_marketing__leads", "lead_id"),
}


def marketing_lead_screening(flow: Flow) -> sql.Composable:
    """Each lead: existing customer (with key) or new, and whether it may be marketed to.

    Consent is per channel (``email``, ``phone``: mobile or landline). A channel is withdrawn
    for a lead when a contact on ``ops.contact_suppressions`` is the lead's own, or belongs to the
    lead's customer anywhere: any system's record of that customer or its golden record. So a
    customer who unsubscribed their email in one system is suppressed on every lead, even one
    carrying only a phone. An erased customer is withdrawn on every channel. ``suppressed`` is
    true when any channel is withdrawn (the platform markets to nobody who withdrew consent);
    ``suppressed_channels`` says which.
    """
    records = sql.SQL(" union all ").join(
        sql.SQL(
            "select {system} as source_system, {id} as source_record_id, mobile_e164, phone_e164, email "
            "from {relation}"
        ).format(
            system=sql.Literal(system), id=sql.Identifier(id_column), relation=sql.Identifier("staging", rel)
        )
        for system, (rel, id_column) in CUSTOMER_RECORDS.items()
    )
    return sql.SQL(
        """
with suppressions as (
    select contact, reason, case when contact like '%%@%%' then 'email' else 'phone' end as channel
    from ops.contact_suppressions
),
records ({columns}) as ({records}),
customer_contacts as (
    select x.customer_key, c.contact
    from records r
    join marts.customer_crosswalk x
        on x.source_system = r.source_system and x.source_record_id = r.source_record_id
    cross join lateral (values (r.mobile_e164), (r.phone_e164), (lower(r.email))) c (contact)
    where c.contact in (select contact from suppressions)
    union
    select d.customer_key, c.contact
    from marts.dim_customer d
    cross join lateral (values (d.mobile_e164), (d.phone_e164), (lower(d.email))) c (contact)
    where c.contact in (select contact from suppressions)
),
leads as (
    select l.lead_id, l.mobile_e164, l.phone_e164, lower(l.email) as email, x.customer_key,
           d.source_systems
    from staging.stg_marketing__leads l
    left join marts.customer_crosswalk x on x.source_system = 'marketing' and x.source_record_id = l.lead_id
    left join marts.dim_customer d on d.customer_key = x.customer_key
),
withdrawn as (
    -- the lead's own contacts, and every contact its customer has anywhere
    select l.lead_id, s.channel, s.reason
    from leads l join suppressions s on s.contact in (l.mobile_e164, l.phone_e164, l.email)
    union
    select l.lead_id, s.channel, s.reason
    from leads l
    join customer_contacts c on c.customer_key = l.customer_key
    join suppressions s on s.contact = c.contact
    union
    select l.lead_id, channel, 'erasure'
    from leads l cross join (values ('email'), ('phone')) ch (channel)
    where exists (select 1 from ops.erasure_requests e where e.customer_key = l.customer_key)
       or exists (select 1 from ops.erasure_tombstones t
                  where t.source_system = 'marketing' and t.source_record_id = l.lead_id)
),
screened as (
    select l.*,
           (select array_agg(distinct w.channel order by w.channel) from withdrawn w
            where w.lead_id = l.lead_id) as suppressed_channels,
           -- erasure first, then the strongest consent signal
           (select w.reason from withdrawn w where w.lead_id = l.lead_id
            order by array_position(array['erasure', 'no_consent', 'unsubscribed', 'complaint'], w.reason)
            limit 1) as suppression_reason
    from leads l
)
select 'marketing_lead_status' as target, lead_id as record_key, customer_key,
       jsonb_build_object(
           'status', case when coalesce(source_systems, 'marketing') <> 'marketing'
                          then 'existing_customer' else 'new' end,
           'customer_key', case when coalesce(source_systems, 'marketing') <> 'marketing'
                                then customer_key end,
           'suppressed', suppression_reason is not null,
           'suppression_reason', suppression_reason,
           'suppressed_channels', to_jsonb(coalesce(suppressed_channels, array[]::text[]))
       ) as payload,
       null::timestamptz as expected_version
from screened
"""
    ).format(
        columns=sql.SQL("source_system, source_record_id, mobile_e164, phone_e164, email"),
        records=records,
    )


#: Per target: the payload that erases a person from it (null = remove the value).
ERASURE_PAYLOADS = {
    "crm_accounts": {
        "account_name": ERASED_NAME,
        "id_card_no": None,
        "phone": None,
        "email": None,
        "address": None,
        "c360_tags": None,
    },
    "erp_customer_master": {
        "cust_name": ERASED_NAME,
        "id_card_no": None,
        "contact_person": None,
        "contact_tel": None,
        "contact_email": None,
        "reg_address": None,
    },
    "oa_customer_archive": {
        "customer_name": ERASED_NAME,
        "legal_rep": None,
        "contact_phone": None,
        "contact_email": None,
        "address": None,
    },
    "callcenter_callers": {
        "name": ERASED_NAME,
        "phone": None,
        "alt_phone": None,
        "email": None,
        "id_card_no": None,
    },
    "marketing_lead_status": {
        "status": "existing_customer",
        "suppressed": True,
        "suppression_reason": "erasure",
        "suppressed_channels": ["email", "phone"],
    },
}
#: Which crosswalk source system's records each erasure target holds.
ERASURE_SOURCES = {
    "crm_accounts": "crm",
    "erp_customer_master": "erp",
    "oa_customer_archive": "oa",
    "callcenter_callers": "callcenter",
    "marketing_lead_status": "marketing",
}


def erasure(flow: Flow) -> sql.Composable:
    """Every source record of an erased customer (the tombstones taken at request time)."""
    import json

    payloads = sql.SQL(" union all ").join(
        sql.SQL("select {}, {}, {}::jsonb").format(
            sql.Literal(t), sql.Literal(ERASURE_SOURCES[t]), sql.Literal(json.dumps(p, ensure_ascii=False))
        )
        for t, p in ERASURE_PAYLOADS.items()
        if t in flow.targets
    )
    return sql.SQL(
        """
with erase (target, source_system, payload) as ({payloads})
select e.target, t.source_record_id as record_key, t.customer_key,
       case when e.target = 'marketing_lead_status'
            then e.payload || jsonb_build_object('customer_key', t.customer_key) else e.payload end
                as payload,
       null::timestamptz as expected_version
from ops.erasure_tombstones t
join erase e on e.source_system = t.source_system
"""
    ).format(payloads=payloads)


PLANNERS: dict[str, Callable[[Flow], sql.Composable]] = {
    "crm_golden_contacts": crm_golden_contacts,
    "important_new_customers_erp": important_new_customers_erp,
    "important_new_customers_oa": important_new_customers_oa,
    "callcenter_contact_changes": callcenter_contact_changes,
    "marketing_lead_screening": marketing_lead_screening,
    "erasure": erasure,
}
