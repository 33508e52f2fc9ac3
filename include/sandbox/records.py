"""Project true customers into each source system's records, with drift and related facts."""

from __future__ import annotations

import random
import string
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from include.sandbox import phones
from include.sandbox.marketing import Campaign, Lead
from include.sandbox.stores import cc_ts, crm_ts, oa_ts
from include.sandbox.world import (
    CustomerFactory,
    TrueCustomer,
    Vocabulary,
    city_variant,
    company_variant,
    email_noise,
    person_variant,
    province_variant,
    random_between,
)

# Share of true customers each system knows (tunable).
PRESENCE = {"crm": 0.80, "erp": 0.60, "callcenter": 0.40, "marketing": 0.30}
OA_PRESENCE = {"company": 0.66, "person": 0.115}  # ~30 % overall, mostly companies
DUPLICATE_SHARE = 0.03  # a second record for the same customer inside one system
MISSING_EMAIL_SHARE = 0.10

_B62 = string.digits + string.ascii_letters
_MOBILE_STYLE_WEIGHTS = {
    "crm": ("e164", "e164", "e164", "national", "international", "digits"),
    "erp": ("dashes", "dashes", "digits", "national", "86_dash"),
    "oa": ("digits", "dashes", "international", "plus86_space", "0086"),
    "callcenter": ("digits", "digits", "digits", "e164", "padded"),
    "marketing": ("digits", "digits", "national", "dashes", "full_width", "plus86_space", "0086", "padded"),
}
TICKET_SUBJECTS = {
    "complaint": ("发货延迟投诉", "服务态度投诉", "发票开错投诉", "产品质量问题"),
    "inquiry": ("咨询产品价格", "咨询合同条款", "查询订单进度", "咨询售后政策"),
    "repair": ("设备故障报修", "安装上门预约", "系统无法登录", "配件更换申请"),
    "contact_change": ("变更联系电话", "变更联系邮箱"),
}


@dataclass
class Batch:
    """Rows per store table plus ground-truth links, flushed together."""

    apps: dict[str, list[tuple]] = field(default_factory=lambda: defaultdict(list))
    erp: dict[str, list[tuple]] = field(default_factory=lambda: defaultdict(list))
    links: list[tuple[str, str, str, str]] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add_app(self, table: str, row: tuple) -> None:
        self.apps[table].append(row)
        self.counts[table] += 1

    def add_erp(self, table: str, row: tuple) -> None:
        self.erp[table].append(row)
        self.counts[f"erp_{table}"] += 1


@dataclass
class Sequences:
    """Counters for fact ids; saved in the sandbox state so ticks continue them."""

    order: int = 0
    invoice: int = 0
    approval: int = 0
    ticket: int = 0
    change: int = 0

    def next(self, name: str) -> int:
        value = getattr(self, name) + 1
        setattr(self, name, value)
        return value


class Projector:
    """Turns a :class:`TrueCustomer` into the records five systems hold about it."""

    def __init__(self, vocab: Vocabulary, factory: CustomerFactory, seq: Sequences, end: datetime) -> None:
        self.vocab = vocab
        self.factory = factory
        self.seq = seq
        self.end = end  # no timestamp after this (as_of, or now in a tick)
        self.taken: dict[str, set[str]] = defaultdict(set)
        self.campaigns: list[Campaign] = []

    # ids ------------------------------------------------------------------------------------------
    def _unique(self, rng: random.Random, space: str, make) -> str:
        while True:
            value = make()
            if value not in self.taken[space]:
                self.taken[space].add(value)
                return value

    def _crm_id(self, rng: random.Random, prefix: str) -> str:
        return prefix + "".join(rng.choice(_B62) for _ in range(12))

    # helpers --------------------------------------------------------------------------------------
    def _mobile(self, rng: random.Random, e164: str, system: str) -> str:
        return phones.format_mobile(e164, rng.choice(_MOBILE_STYLE_WEIGHTS[system]))

    def _email(self, rng: random.Random, c: TrueCustomer, conflict_share: float = 0.5) -> str | None:
        if c.email is None or rng.random() < MISSING_EMAIL_SHARE:
            return None
        chosen = c.alt_email if c.alt_email and rng.random() < conflict_share else c.email
        return email_noise(rng, chosen)

    def _name(self, rng: random.Random, c: TrueCustomer, exact_share: float, typo_share: float) -> str:
        if c.kind == "company":
            return company_variant(rng, c, self.vocab, exact_share)
        return person_variant(rng, c.name, self.vocab, typo_share)

    def _times(self, rng: random.Random, c: TrueCustomer) -> tuple[datetime, datetime]:
        start = min(c.created_at, self.end)
        created = random_between(rng, start, min(start + timedelta(days=60), self.end))
        return created, random_between(rng, created, self.end)

    # the whole customer ---------------------------------------------------------------------------
    def project(self, rng: random.Random, c: TrueCustomer, batch: Batch) -> None:
        systems = [s for s in ("crm", "erp") if rng.random() < PRESENCE[s]]
        if rng.random() < OA_PRESENCE[c.kind]:
            systems.append("oa")
        systems += [s for s in ("callcenter", "marketing") if rng.random() < PRESENCE[s]]
        if not systems:
            systems = ["crm"]
        stale = rng.choice(systems) if c.old_mobile else None  # this system never heard of the new number
        for system in systems:
            copies = 2 if rng.random() < DUPLICATE_SHARE else 1
            for _ in range(copies):
                mobile = c.old_mobile if system == stale else c.mobile
                getattr(self, f"_{system}")(rng, c, mobile, batch, stale)

    # CRM ------------------------------------------------------------------------------------------
    def _crm(self, rng: random.Random, c: TrueCustomer, mobile: str, batch: Batch, stale: str | None) -> None:
        account_id = self._unique(rng, "crm", lambda: self._crm_id(rng, "001"))
        created, updated = self._times(rng, c)
        company = c.kind == "company"
        if company and c.landline and rng.random() < 0.5:
            phone = phones.format_landline(c.landline, rng.choice(phones.LANDLINE_STYLES), rng)
        else:
            phone = self._mobile(rng, mobile, "crm")
        row = (
            account_id,
            self._name(rng, c, exact_share=0.75, typo_share=0.04),
            c.kind,
            c.uscc if company and rng.random() < 0.85 else None,
            c.id_card_no if not company and rng.random() < 0.4 else None,
            c.industry,
            province_variant(rng, c.province, 0.7),
            city_variant(rng, c.city, 0.7),
            c.address,
            phone,
            self._email(rng, c),
            rng.choice(self.vocab.sales_reps),
            crm_ts(created),
            crm_ts(updated),
            rng.choice(("import", "sync", "api", "web")),
        )
        batch.add_app("crm_accounts", row)
        batch.links.append(("crm", "accounts", account_id, c.customer_id))
        if company:
            people = [(c.contact_person, mobile, c.email)]
            people += [
                (self.vocab.person_name(rng), phones.make_mobile(rng), self.factory.personal_email(rng))
                for _ in range(rng.choice((0, 0, 1, 2)))
            ]
            for full_name, person_mobile, email in people:
                batch.add_app(
                    "crm_contacts",
                    (
                        self._crm_id(rng, "003"),
                        account_id,
                        person_variant(rng, full_name, self.vocab, 0.03),
                        self._mobile(rng, person_mobile, "crm"),
                        email_noise(rng, email) if rng.random() > MISSING_EMAIL_SHARE else None,
                        rng.choice(("总经理", "采购经理", "财务主管", "行政专员", "IT负责人", "销售总监")),
                        crm_ts(created),
                        crm_ts(random_between(rng, created, self.end)),
                    ),
                )
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            opened = random_between(rng, created, self.end)
            stage = rng.choice(
                ("prospecting", "qualification", "proposal", "negotiation", "closed_won", "closed_lost")
            )
            batch.add_app(
                "crm_opportunities",
                (
                    self._crm_id(rng, "006"),
                    account_id,
                    f"{rng.choice(('年度采购', '系统升级', '扩容', '续约', '新项目'))}-{opened:%Y%m}",
                    stage,
                    float(rng.randrange(5, 2000) * 1000 if company else rng.randrange(1, 100) * 100),
                    (opened + timedelta(days=rng.randrange(14, 180))).date().isoformat(),
                    crm_ts(opened),
                    crm_ts(random_between(rng, opened, self.end)),
                ),
            )

    # ERP ------------------------------------------------------------------------------------------
    def _erp(self, rng: random.Random, c: TrueCustomer, mobile: str, batch: Batch, stale: str | None) -> None:
        cust_no = self._unique(rng, "erp", lambda: f"KH{rng.randrange(10**8):08d}")
        created, updated = self._times(rng, c)
        company = c.kind == "company"
        if company and c.landline and rng.random() < 0.6:
            tel = phones.format_landline(c.landline, rng.choice(("dash", "dash", "extension", "paren")), rng)
        else:
            tel = self._mobile(rng, mobile, "erp")
        credit = rng.randrange(50, 5000) * 1000 if company else rng.randrange(0, 50) * 1000
        batch.add_erp(
            "customer_master",
            (
                cust_no,
                self._name(rng, c, exact_share=0.85, typo_share=0.03),
                "企业" if company else "个人",
                c.uscc if company and rng.random() < 0.9 else None,
                c.id_card_no if not company and rng.random() < 0.85 else None,
                c.contact_person if rng.random() < 0.9 else None,
                tel,
                self._email(rng, c) if rng.random() < 0.75 else None,
                f"{c.province}{c.city.removeprefix(c.province)}{c.address}",
                c.province,
                c.city,
                Decimal(credit),
                created,
                updated,
            ),
        )
        batch.links.append(("erp", "customer_master", cust_no, c.customer_id))
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4, 6))):
            self.erp_order(rng, cust_no, company, created, batch)

    def erp_order(
        self, rng: random.Random, cust_no: str, company: bool, after: datetime, batch: Batch
    ) -> None:
        ordered = random_between(rng, after, self.end)
        order_no = f"SO{ordered:%Y%m%d}{self.seq.next('order'):07d}"
        amount = Decimal(rng.randrange(500, 500000 if company else 20000) * 100) / 100
        status = rng.choices(("completed", "shipped", "open", "cancelled"), (60, 20, 12, 8))[0]
        batch.add_erp(
            "sales_orders",
            (
                order_no,
                cust_no,
                ordered.date(),
                amount,
                "CNY" if rng.random() < 0.95 else "USD",
                status,
                ordered,
            ),
        )
        if status == "cancelled" or rng.random() < 0.1:
            return
        invoiced = min(ordered + timedelta(days=rng.randrange(0, 10)), self.end)
        due = invoiced.date() + timedelta(days=rng.choice((30, 30, 60, 90)))
        outcome = rng.choices(("paid", "late", "partial", "unpaid"), (55, 15, 12, 18))[0]
        paid_amount, paid_date, modified = Decimal(0), None, invoiced
        if outcome in ("paid", "late", "partial"):
            delay = rng.randrange(0, (due - invoiced.date()).days + 1) if outcome == "paid" else None
            if outcome == "late":
                delay = (due - invoiced.date()).days + rng.randrange(1, 90)
            if outcome == "partial":
                delay = rng.randrange(0, 120)
            paid_at = invoiced + timedelta(days=delay, hours=rng.randrange(9, 18))
            if paid_at < self.end:
                paid_date, modified = paid_at.date(), paid_at
                paid_amount = (
                    amount
                    if outcome != "partial"
                    else (amount * rng.randrange(10, 90) / 100).quantize(Decimal("0.01"))
                )
        if paid_amount >= amount:
            status = "paid"
        elif paid_amount > 0:
            status = "partial"
        else:
            status = "overdue" if due < self.end.date() else "issued"
        batch.add_erp(
            "invoices",
            (
                f"FP{invoiced:%Y%m}{self.seq.next('invoice'):08d}",
                cust_no,
                order_no,
                invoiced.date(),
                due,
                amount,
                paid_amount,
                paid_date,
                status,
                modified,
            ),
        )

    # OA -------------------------------------------------------------------------------------------
    def _oa(self, rng: random.Random, c: TrueCustomer, mobile: str, batch: Batch, stale: str | None) -> None:
        archived, updated = self._times(rng, c)
        archive_id = self._unique(rng, "oa", lambda: f"DA{archived:%Y}{rng.randrange(10**6):06d}")
        company = c.kind == "company"
        if company and c.landline and rng.random() < 0.4:
            phone = phones.format_landline(c.landline, rng.choice(phones.LANDLINE_STYLES), rng)
        else:
            phone = self._mobile(rng, mobile, "oa")
        batch.add_app(
            "oa_customer_archive",
            (
                archive_id,
                self._name(rng, c, exact_share=0.9, typo_share=0.02),
                c.uscc if company and rng.random() < 0.95 else None,
                c.legal_rep,
                phone,
                self._email(rng, c),
                f"{c.province}{c.city.removeprefix(c.province)}{c.address}"
                if rng.random() < 0.7
                else c.address,
                oa_ts(archived),
                oa_ts(updated),
            ),
        )
        batch.links.append(("oa", "customer_archive", archive_id, c.customer_id))
        for _ in range(rng.choice((1, 1, 2, 3))):
            self.oa_approval(rng, archive_id, company, archived, batch)

    def oa_approval(
        self, rng: random.Random, archive_id: str, company: bool, after: datetime, batch: Batch
    ) -> None:
        submitted = random_between(rng, after, self.end)
        status = rng.choices(("approved", "rejected", "pending", "withdrawn"), (70, 10, 12, 8))[0]
        decided = (
            None if status == "pending" else min(submitted + timedelta(hours=rng.randrange(2, 240)), self.end)
        )
        seq = self.seq.next("approval")
        batch.add_app(
            "oa_contract_approvals",
            (
                f"SP{seq:09d}",
                archive_id,
                f"HT-{submitted:%Y}-{seq:06d}",
                float(rng.randrange(1, 3000 if company else 100) * 1000),
                status,
                oa_ts(submitted),
                decided and oa_ts(decided),
                oa_ts(decided or submitted),
            ),
        )

    # call center ----------------------------------------------------------------------------------
    def _callcenter(
        self, rng: random.Random, c: TrueCustomer, mobile: str, batch: Batch, stale: str | None
    ) -> None:
        caller_id = self._unique(rng, "callcenter", lambda: f"{rng.randrange(10**8, 10**9)}")
        created, updated = self._times(rng, c)
        company = c.kind == "company"
        alt = None
        phone = self._mobile(rng, mobile, "callcenter")
        if c.landline and rng.random() < 0.3:
            alt = phones.format_landline(c.landline, rng.choice(("digits", "dash", "national")), rng)
        batch.add_app(
            "callcenter_callers",
            (
                caller_id,
                person_variant(rng, c.contact_person, self.vocab, 0.08),  # agents type names they hear
                phone,
                alt,
                self._email(rng, c) if rng.random() < 0.5 else None,
                c.id_card_no if not company and rng.random() < 0.3 else None,
                company_variant(rng, c, self.vocab, 0.4) if company else None,
                cc_ts(updated),
            ),
        )
        batch.links.append(("callcenter", "callers", caller_id, c.customer_id))
        if c.old_mobile and stale not in (None, "callcenter") and mobile == c.mobile:
            # An agent replaced the old number while on the phone with the customer.
            changed = random_between(rng, created, updated)
            old = phones.format_mobile(c.old_mobile, "digits")
            self.cc_change(rng, caller_id, "phone", old, phone, changed, batch)
            self.cc_ticket(rng, caller_id, changed, batch, category="contact_change")
        for _ in range(rng.choice((0, 1, 1, 2, 3, 5))):
            self.cc_ticket(rng, caller_id, random_between(rng, created, self.end), batch)

    def cc_change(self, rng, caller_id: str, fld: str, old, new, at: datetime, batch: Batch) -> None:
        batch.add_app(
            "callcenter_contact_changes",
            (
                f"CHG{self.seq.next('change'):09d}",
                caller_id,
                fld,
                old,
                new,
                rng.choice(self.vocab.agents),
                cc_ts(at),
            ),
        )

    def cc_ticket(
        self, rng, caller_id: str, opened: datetime, batch: Batch, category: str | None = None
    ) -> None:
        category = (
            category or rng.choices(("complaint", "inquiry", "repair", "contact_change"), (25, 45, 25, 5))[0]
        )
        closed = opened + timedelta(minutes=rng.randrange(5, 14 * 24 * 60)) if rng.random() < 0.8 else None
        if closed and closed > self.end:
            closed = None
        batch.add_app(
            "callcenter_tickets",
            (
                f"TK{self.seq.next('ticket'):09d}",
                caller_id,
                category,
                rng.choices(("low", "normal", "high", "urgent"), (20, 55, 20, 5))[0],
                "closed" if closed else "open",
                rng.choice(TICKET_SUBJECTS[category]),
                cc_ts(opened),
                closed and cc_ts(closed),
                cc_ts(closed or opened),
            ),
        )

    # marketing ------------------------------------------------------------------------------------
    def marketing_lead(self, rng: random.Random, c: TrueCustomer, batch: Batch) -> None:
        """A lead for an existing customer who signs up again (used by ticks)."""
        self._marketing(rng, c, c.mobile, batch, None)

    def _marketing(
        self, rng: random.Random, c: TrueCustomer, mobile: str, batch: Batch, stale: str | None
    ) -> None:
        campaign = rng.choice(self.campaigns)
        company = c.kind == "company"
        values = {
            "lead_name": person_variant(rng, c.contact_person, self.vocab, 0.05),
            "mobile": self._mobile(rng, mobile, "marketing"),
            "email": self._email(rng, c, conflict_share=0.6) if rng.random() < 0.7 else None,
            "company_name": company_variant(rng, c, self.vocab, 0.5) if company else None,
            "province": province_variant(rng, c.province, 0.3),
            "city": city_variant(rng, c.city, 0.3),
            "campaign_code": campaign.code,
            "lead_source": rng.choice(
                ("官网表单", "展会", "微信公众号", "百度推广", "抖音", "线下沙龙", "合作伙伴")
            ),
            "created_at": random_between(rng, campaign.starts, campaign.ends),
        }
        campaign.leads.append(Lead(c.customer_id, values))
