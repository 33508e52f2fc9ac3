"""The true customers behind every source system, and the ways systems get them slightly wrong.

Faker (zh_CN, seeded per instance) supplies the vocabulary: surnames with their real frequencies,
given names, romanised names, street names, company words, area codes. Calling Faker per record is
too slow at a million customers, so :class:`Vocabulary` draws pools from it once and the
generator picks from those pools with its own seeded ``random.Random``.
"""

from __future__ import annotations

import random
from bisect import bisect
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from itertools import accumulate

from faker import Faker
from faker.providers.company.zh_CN import Provider as _FakerCompany
from faker.providers.person.zh_CN import Provider as _FakerPerson
from faker.providers.ssn.zh_CN import Provider as _FakerSsn

from include.sandbox import ids, phones

# (province, city, landline area code, administrative division code of a central district, weight)
CITIES: tuple[tuple[str, str, str, str, int], ...] = (
    ("北京市", "北京市", "010", "110105", 12),
    ("上海市", "上海市", "021", "310115", 12),
    ("天津市", "天津市", "022", "120101", 4),
    ("重庆市", "重庆市", "023", "500103", 4),
    ("广东省", "广州市", "020", "440106", 8),
    ("广东省", "深圳市", "0755", "440305", 9),
    ("广东省", "东莞市", "0769", "441900", 3),
    ("浙江省", "杭州市", "0571", "330106", 7),
    ("浙江省", "宁波市", "0574", "330203", 3),
    ("江苏省", "南京市", "025", "320102", 5),
    ("江苏省", "苏州市", "0512", "320505", 5),
    ("四川省", "成都市", "028", "510104", 6),
    ("湖北省", "武汉市", "027", "420102", 5),
    ("湖南省", "长沙市", "0731", "430102", 3),
    ("山东省", "济南市", "0531", "370102", 3),
    ("山东省", "青岛市", "0532", "370202", 3),
    ("福建省", "厦门市", "0592", "350203", 2),
    ("福建省", "福州市", "0591", "350102", 2),
    ("河南省", "郑州市", "0371", "410102", 3),
    ("陕西省", "西安市", "029", "610102", 3),
    ("辽宁省", "沈阳市", "024", "210102", 2),
    ("安徽省", "合肥市", "0551", "340102", 2),
    ("河北省", "石家庄市", "0311", "130102", 2),
    ("云南省", "昆明市", "0871", "530102", 2),
)
_CITY_CUM = list(accumulate(c[4] for c in CITIES))

# Company name = [city] + brand + industry word + legal-form suffix, e.g. 深圳鑫博科技有限公司.
INDUSTRIES: tuple[tuple[str, str], ...] = (
    ("科技", "信息技术"),
    ("信息技术", "信息技术"),
    ("网络科技", "互联网"),
    ("贸易", "批发零售"),
    ("实业", "制造业"),
    ("电子", "制造业"),
    ("机械设备", "制造业"),
    ("建材", "建筑业"),
    ("建筑工程", "建筑业"),
    ("物流", "交通物流"),
    ("供应链管理", "交通物流"),
    ("食品", "食品饮料"),
    ("医药", "医疗健康"),
    ("医疗器械", "医疗健康"),
    ("环保科技", "节能环保"),
    ("新材料", "制造业"),
    ("文化传媒", "文化传媒"),
    ("餐饮管理", "住宿餐饮"),
    ("咨询", "商务服务"),
    ("教育科技", "教育"),
)
LEGAL_FORMS = (
    ("有限公司", 60),
    ("有限责任公司", 15),
    ("股份有限公司", 10),
    ("集团有限公司", 5),
)
_FORM_NAMES = [f for f, _ in LEGAL_FORMS]
_FORM_CUM = list(accumulate(w for _, w in LEGAL_FORMS))
PERSONAL_MAIL_DOMAINS = ("qq.com", "163.com", "126.com", "sina.com", "foxmail.com", "139.com", "gmail.com")


def weighted_choice(rng: random.Random, items: list | tuple, cum_weights: list[float]):
    return items[bisect(cum_weights, rng.random() * cum_weights[-1])]


class Vocabulary:
    """Word pools drawn once from a seeded Faker('zh_CN')."""

    def __init__(self, seed: int) -> None:
        fake = Faker("zh_CN")
        fake.seed_instance(seed)
        self.surnames = list(_FakerPerson.last_names.keys())
        self.surname_cum = list(accumulate(_FakerPerson.last_names.values()))
        self.given_chars = list(_FakerPerson.first_names)
        self.first_romanized = list(_FakerPerson.first_romanized_names)
        self.last_romanized = list(_FakerPerson.last_romanized_names)
        # Brand words: Faker's own company prefixes plus two-character given-name pairs (华强, 建国 ...).
        prefixes = [p for p in _FakerCompany.company_prefixes if not p.endswith("公司")]
        self.brands = prefixes + [fake.first_name() + fake.first_name() for _ in range(3000)]
        self.brands = [b[:4] for b in self.brands if len(b) >= 2]
        self.streets = sorted({fake.street_name() for _ in range(4000)})
        self.districts = sorted({fake.district() + "区" for _ in range(200)})
        self.area_codes = [a for a in _FakerSsn.area_codes if not a.endswith("00")]
        self.domains = sorted({w for w in (fake.domain_word() for _ in range(3000)) if not w.isdigit()})
        self.user_names = sorted({fake.user_name() for _ in range(5000)})
        self.sales_reps = [fake.name() for _ in range(40)]
        self.agents = [f"agent{n:03d}" for n in range(1, 61)]

    def surname(self, rng: random.Random) -> str:
        return weighted_choice(rng, self.surnames, self.surname_cum)

    def person_name(self, rng: random.Random) -> str:
        given = rng.choice(self.given_chars)
        if rng.random() < 0.55:
            given += rng.choice(self.given_chars)
        return self.surname(rng) + given[:2]


@dataclass(slots=True)
class TrueCustomer:
    """One real customer, the way the company would describe it if it knew the truth."""

    customer_id: str
    kind: str  # "person" | "company"
    name: str
    uscc: str | None
    uscc_valid: bool | None
    id_card_no: str | None
    legal_rep: str | None
    contact_person: str
    mobile: str  # E.164
    old_mobile: str | None  # an earlier number some system may still hold
    landline: str | None  # E.164
    email: str | None
    alt_email: str | None  # a second address some systems hold instead
    province: str
    city: str
    address: str  # street part, without province and city
    industry: str | None
    brand: str | None
    legal_form: str | None
    created_at: datetime


CUSTOMER_COLUMNS = [f.name for f in fields(TrueCustomer)]


def customer_row(c: TrueCustomer) -> list:
    row = [getattr(c, name) for name in CUSTOMER_COLUMNS]
    row[-1] = c.created_at.isoformat()
    return row


class CustomerFactory:
    """Makes :class:`TrueCustomer` objects: ~65 % persons, ~35 % companies."""

    COMPANY_SHARE = 0.35
    INVALID_USCC_SHARE = 0.05

    def __init__(self, vocab: Vocabulary, as_of: datetime, history_days: int = 730) -> None:
        self.vocab = vocab
        self.as_of = as_of
        self.history_days = history_days
        self.company_names: set[str] = set()

    def _email_user(self, rng: random.Random) -> str:
        v = self.vocab
        style = rng.random()
        if style < 0.4:
            return rng.choice(v.user_names)
        if style < 0.7:
            return f"{rng.choice(v.first_romanized)}.{rng.choice(v.last_romanized)}".lower()
        return str(rng.randrange(10**7, 10**10))  # QQ-number mailboxes

    def personal_email(self, rng: random.Random) -> str:
        return f"{self._email_user(rng)}@{rng.choice(PERSONAL_MAIL_DOMAINS)}"

    def make(self, rng: random.Random, number: int) -> TrueCustomer:
        v = self.vocab
        province, city, area_code, division, _ = weighted_choice(rng, CITIES, _CITY_CUM)
        created = self.as_of - timedelta(seconds=rng.randrange(86400, self.history_days * 86400))
        address = f"{rng.choice(v.districts)}{rng.choice(v.streets)}{rng.randrange(1, 999)}号"
        mobile = phones.make_mobile(rng)
        old_mobile = phones.make_mobile(rng) if rng.random() < 0.15 else None
        email = self.personal_email(rng) if rng.random() < 0.9 else None
        alt_email = self.personal_email(rng) if email and rng.random() < 0.12 else None
        customer_id = f"TC{number:08d}"
        if rng.random() < self.COMPANY_SHARE:
            industry_word, industry = rng.choice(INDUSTRIES)
            form = weighted_choice(rng, _FORM_NAMES, _FORM_CUM)
            city_short = city.removesuffix("市")
            while True:
                brand = rng.choice(v.brands)
                name = f"{city_short}{brand}{industry_word}{form}"
                if name not in self.company_names:
                    break
                brand = brand + rng.choice(v.given_chars)
                name = f"{city_short}{brand}{industry_word}{form}"
                if name not in self.company_names:
                    break
            self.company_names.add(name)
            valid = rng.random() >= self.INVALID_USCC_SHARE
            domain = rng.choice(v.domains) + rng.choice((".com", ".com.cn", ".cn"))
            contact = v.person_name(rng)
            return TrueCustomer(
                customer_id=customer_id,
                kind="company",
                name=name,
                uscc=ids.make_uscc(rng, division, valid=valid),
                uscc_valid=valid,
                id_card_no=None,
                legal_rep=v.person_name(rng),
                contact_person=contact,
                mobile=mobile,
                old_mobile=old_mobile,
                landline=phones.make_landline(rng, area_code),
                email=f"{rng.choice(v.user_names)}@{domain}",
                alt_email=alt_email and f"{rng.choice(('info', 'sales', 'service', 'admin'))}@{domain}",
                province=province,
                city=city,
                address=address,
                industry=industry,
                brand=brand,
                legal_form=form,
                created_at=created,
            )
        name = v.person_name(rng)
        age_days = rng.randrange(20 * 365, 70 * 365)
        birth = (self.as_of - timedelta(days=age_days)).date()
        return TrueCustomer(
            customer_id=customer_id,
            kind="person",
            name=name,
            uscc=None,
            uscc_valid=None,
            id_card_no=ids.make_id_card(rng, rng.choice(v.area_codes), birth, female=rng.random() < 0.5),
            legal_rep=None,
            contact_person=name,
            mobile=mobile,
            old_mobile=old_mobile,
            landline=phones.make_landline(rng, area_code) if rng.random() < 0.2 else None,
            email=email,
            alt_email=alt_email,
            province=province,
            city=city,
            address=address,
            industry=None,
            brand=None,
            legal_form=None,
            created_at=created,
        )


# --- drift: how one system's copy differs from the truth -------------------------------------------


def typo(rng: random.Random, text: str, vocab: Vocabulary) -> str:
    """One wrong or missing character, keeping the first one (surname / city) intact."""
    if len(text) < 2:
        return text
    i = rng.randrange(1, len(text))
    if len(text) >= 3 and rng.random() < 0.35:
        return text[:i] + text[i + 1 :]
    return text[:i] + rng.choice(vocab.given_chars)[0] + text[i + 1 :]


def company_variant(rng: random.Random, c: TrueCustomer, vocab: Vocabulary, exact_share: float) -> str:
    """The company's name as one system holds it: full, abbreviated, prefix dropped or mistyped."""
    r = rng.random()
    if r < exact_share:
        return c.name
    city_short = c.city.removesuffix("市")
    core = c.name.removeprefix(city_short)
    r = rng.random()
    if r < 0.3:
        return city_short + core.replace(c.legal_form or "有限公司", "公司")  # 有限公司 -> 公司
    if r < 0.55:
        return core  # province/city prefix dropped
    if r < 0.7:
        return f"{c.brand}{core.removeprefix(c.brand or '').replace(c.legal_form or '', '')}"  # short name
    if r < 0.8:
        # 鑫博科技（深圳）有限公司
        return f"{core.replace(c.legal_form or '', '')}（{city_short}）{c.legal_form}"
    return typo(rng, c.name, vocab)


def person_variant(rng: random.Random, name: str, vocab: Vocabulary, typo_share: float) -> str:
    return typo(rng, name, vocab) if rng.random() < typo_share else name


def email_noise(rng: random.Random, email: str | None) -> str | None:
    """Case and whitespace the way people paste addresses into forms."""
    if email is None:
        return None
    r = rng.random()
    if r < 0.12:
        return email.upper() if rng.random() < 0.3 else email[0].upper() + email[1:]
    if r < 0.2:
        return f" {email}" if rng.random() < 0.5 else f"{email} "
    return email


def province_variant(rng: random.Random, province: str, full_share: float) -> str:
    if rng.random() < full_share:
        return province
    return province.removesuffix("省").removesuffix("市")


def city_variant(rng: random.Random, city: str, full_share: float) -> str:
    return city if rng.random() < full_share else city.removesuffix("市")


def random_between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    if end <= start:
        return start
    span = max(1, int((end - start).total_seconds()))
    return start + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(1000) * 1000)


def customer_from_row(row: dict[str, str]) -> TrueCustomer:
    """Inverse of :func:`customer_row`, for rows read back from ``customers.csv``."""
    values: dict = {k: (v if v != "" else None) for k, v in row.items()}
    values["uscc_valid"] = None if values["uscc_valid"] is None else values["uscc_valid"] == "True"
    values["created_at"] = datetime.fromisoformat(row["created_at"])
    return TrueCustomer(**values)
