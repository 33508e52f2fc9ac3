"""A small, nasty, hand-made raw landing for the dbt project, and the identity truth it encodes.

Every source entity in the registry gets its `raw_<source>.<entity>` table per the landing contract.
The customer records cover the formats people really type (full-width digits, 0086 / +86 / 86-
prefixes, landlines with area codes, emails with case and whitespace noise, company names with and
without region prefix and legal-form suffix), records edited after landing (two versions), invalid
checksums, and generic values shared by many unrelated people.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import yaml

from include.extract.landing import ensure_raw_table
from include.identity.pii import protect_record

#: The salt the fixture's resident ID numbers are hashed with (tests compute the same hashes).
PII_SALT = "test-salt"
REGISTRY_PATH = Path(__file__).resolve().parents[2] / "include" / "registry" / "sources.yaml"

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]


def uscc(first17: str) -> str:
    """The 17 characters plus their GB 32100-2015 check character."""
    total = sum(USCC_CHARSET.index(c) * w for c, w in zip(first17, USCC_WEIGHTS, strict=True))
    return first17 + USCC_CHARSET[(31 - total % 31) % 31]


def id_card(first17: str) -> str:
    """The 17 digits plus their GB 11643-1999 check character."""
    return first17 + "10X98765432"[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def fullwidth(text: str) -> str:
    """ASCII -> full-width forms, the way some input methods type digits."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


U_XINGCHEN = uscc("91110108MA01XCKJ0")  # 北京星辰科技有限公司
U_YUNFAN = uscc("91310115MA1H7YF05")  # 上海云帆物流有限公司
U_HUAXIN_BJ = uscc("91110105MA00HX8A1")  # 北京华信科技有限公司
U_HUAXIN_SH = uscc("91310000MA1FL3HX2")  # 上海华信科技有限公司 (same name key, other company)
U_INVALID = "91440300MA5DHT0000"  # checksum wrong: typed on two unrelated companies
ID_ZHANGWEI = id_card("11010519850307006")  # ends in X
ID_ZHANGWEI_2 = id_card("44030619900101123")  # another 张伟
ID_LINA_BAD = "320102199208154560"  # checksum wrong (valid would end in 4)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone(timedelta(hours=8)))


#: The day the marts' business rules are evaluated for on this fixture (dbt var `as_of_date`).
AS_OF_DATE = "2024-03-10"


def ts(days: int) -> str:
    return (T0 + timedelta(days=days)).isoformat()


# (source, entity) -> payloads in landing order; a key repeated is a later version of that record.
RECORDS: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("crm", "accounts"): [
        {
            "id": "A001",
            "account_name": "星辰科技公司",
            "account_type": "company",
            "uscc": U_XINGCHEN.lower()[:9] + " " + U_XINGCHEN.lower()[9:],
            "phone": "138-1234-5678",
            "email": "old@xingchen.com",
            "province": "北京市",
            "city": "北京",
            "created_at": ts(-400),
            "updated_at": ts(-30),
        },
        {
            "id": "A001",
            "account_name": "星辰科技公司",
            "account_type": "company",
            "uscc": U_XINGCHEN.lower()[:9] + " " + U_XINGCHEN.lower()[9:],
            "phone": "138-1234-5678",
            "email": "  Li.Ming@XingChen.com ",
            "province": "北京市",
            "city": "北京",
            "created_at": ts(-400),
            "updated_at": ts(-1),
        },
        {
            "id": "A002",
            "account_name": "张伟",
            "account_type": "person",
            "id_card_no": ID_ZHANGWEI.lower(),
            "phone": "0086 139 0000 1111",
            "email": None,
            "updated_at": ts(-10),
        },
        {
            "id": "A003",
            "account_name": "云帆物流",
            "account_type": "company",
            "uscc": "",
            "phone": "137 0000 2222",
            "email": "ops@yunfan.cn ",
            "updated_at": ts(-5),
        },
        {
            "id": "A004",
            "account_name": "杭州绿源农业有限公司",
            "account_type": "company",
            "uscc": U_INVALID,
            "phone": "0571-8888 9999",
            "email": "info@lvyuan.com",
            "updated_at": ts(-5),
        },
        {
            "id": "A006",
            "account_name": "张伟",
            "account_type": "person",
            "id_card_no": ID_ZHANGWEI_2,
            "phone": "+86 186 1111 2222",
            "email": "zhangwei86@163.com",
            "updated_at": ts(-3),
        },
        {
            "id": "A008",
            "account_name": "上海华信科技有限公司",
            "account_type": "company",
            "uscc": U_HUAXIN_SH,
            "phone": "(021)6666 7777",
            "email": "hr@huaxin-sh.com",
            "updated_at": ts(-3),
        },
        {
            "id": "A009",
            "account_name": "Acme Trading Co., Ltd",
            "account_type": "company",
            "phone": "+1 415 555 1234",
            "email": "not an email",
            "updated_at": ts(-3),
        },
    ],
    ("crm", "contacts"): [
        {
            "id": "CT1",
            "account_id": "A001",
            "full_name": "李明",
            "mobile": "+86 13812345678",
            "email": "LI.MING@xingchen.com",
            "title": "采购经理",
            "created_at": ts(-300),
            "updated_at": ts(-2),
        },
        {
            "id": "CT2",
            "account_id": "A003",
            "full_name": "王五",
            "mobile": "010-12345678",
            "email": None,
            "title": None,
            "created_at": ts(-3),
            "updated_at": ts(-2),
        },
    ],
    ("crm", "opportunities"): [
        {
            "id": "OP1",
            "account_id": "A001",
            "name": "年度框架",
            "stage": "Negotiation",
            "amount": "1,234.50",
            "expected_close_date": "2024-06-30",
            "created_at": ts(-60),
            "updated_at": ts(-2),
        },
        {
            "id": "OP2",
            "account_id": "A003",
            "name": "仓储扩容",
            "stage": "won",
            "amount": 88000,
            "expected_close_date": "2024-02-30",
            "created_at": ts(-60),
            "updated_at": ts(-2),
        },
    ],
    ("erp", "customer_master"): [
        {
            "cust_no": "C001",
            "cust_name": "北京星辰科技有限公司",
            "cust_type": "C",
            "tax_no": fullwidth(U_XINGCHEN),
            "contact_person": "李明",
            "contact_tel": "010-62345678",
            "contact_email": " Finance@XingChen.com ",
            "reg_address": "北京市海淀区中关村大街1号",
            "province": "北京市",
            "city": "北京市",
            "credit_limit": "500000",
            "created_time": ts(-700),
            "modified_time": ts(-20),
        },
        {
            "cust_no": "C002",
            "cust_name": "张 伟",
            "cust_type": "P",
            "id_card_no": ID_ZHANGWEI,
            "contact_tel": fullwidth("86-139-0000-1111"),
            "province": "北京",
            "modified_time": ts(-15),
        },
        {
            "cust_no": "C003",
            "cust_name": "上海云帆物流有限公司",
            "cust_type": "C",
            "tax_no": U_YUNFAN,
            "contact_tel": "021-55556666",
            "contact_email": "OPS@yunfan.cn",
            "province": "上海市",
            "city": "上海市",
            "reg_address": "上海市浦东新区张江路88号",
            "modified_time": ts(-40),
        },
        {
            "cust_no": "C004",
            "cust_name": "深圳海天贸易有限公司",
            "cust_type": "C",
            "tax_no": U_INVALID,
            "contact_tel": "0755-12345678",
            "contact_email": "sales@haitian.com",
            "province": "广东省",
            "city": "深圳市",
            "modified_time": ts(-40),
        },
        {
            "cust_no": "C007",
            "cust_name": "恒达建材（广州）有限公司",
            "cust_type": "C",
            "tax_no": "",
            "contact_tel": "020 8765 4321",
            "province": "广东",
            "city": "广州",
            "modified_time": ts(-40),
        },
        {
            "cust_no": "C008",
            "cust_name": "北京华信科技有限公司",
            "cust_type": "C",
            "tax_no": U_HUAXIN_BJ,
            "contact_tel": "010-88887777",
            "modified_time": ts(-40),
        },
        {
            "cust_no": "C010",
            "cust_name": "李娜",
            "cust_type": "P",
            "id_card_no": ID_LINA_BAD,
            "contact_tel": "15900001234",
            "modified_time": ts(-40),
        },
    ],
    ("erp", "sales_orders"): [
        {
            "order_no": "SO1",
            "cust_no": "C001",
            "order_date": "2024-02-01",
            "amount": 1200.5,
            "currency": "cny",
            "status": "Shipped",
            "modified_time": ts(-20),
        },
        {
            "order_no": "SO2",
            "cust_no": "C003",
            "order_date": "2024-02-02",
            "amount": "3,000",
            "currency": "CNY",
            "status": "open",
            "modified_time": ts(-20),
        },
        # issue 5 (marts): a cancelled order, a refund, and a repeat buyer gone quiet
        {
            "order_no": "SO3",
            "cust_no": "C001",
            "order_date": "2024-03-01",
            "amount": 9999,
            "currency": "CNY",
            "status": "cancelled",
            "modified_time": ts(-9),
        },
        {
            "order_no": "SO4",
            "cust_no": "C003",
            "order_date": "2024-02-20",
            "amount": "-500",
            "currency": "CNY",
            "status": "refunded",
            "modified_time": ts(-9),
        },
        *[
            {
                "order_no": order_no,
                "cust_no": "C007",
                "order_date": day,
                "amount": 20000,
                "currency": "CNY",
                "status": "completed",
                "modified_time": ts(-150),
            }
            for order_no, day in (("SO5", "2023-09-01"), ("SO6", "2023-10-01"))
        ],
    ],
    ("erp", "invoices"): [
        {
            "invoice_no": "INV1",
            "cust_no": "C001",
            "order_no": "SO1",
            "invoice_date": "2024-02-03",
            "due_date": "2024-03-03",
            "amount": 1200.5,
            "paid_amount": 1200.5,
            "paid_date": "2024-02-20",
            "status": "PAID",
            "modified_time": ts(-10),
        },
        {
            "invoice_no": "INV2",
            "cust_no": "C003",
            "order_no": "SO2",
            "invoice_date": "2024-02-02",
            "due_date": "2024-03-01",
            "amount": "3,000",
            "paid_amount": 0,
            "paid_date": None,
            "status": "overdue",
            "modified_time": ts(-9),
        },
    ],
    ("oa", "customer_archive"): [
        {
            "archive_id": "OA1",
            "customer_name": "北京星辰科技有限公司",
            "credit_code": U_XINGCHEN,
            "legal_rep": "李明",
            "contact_phone": "(010)6234 5678",
            "archived_at": ts(-500),
            "updated_at": ts(-50),
        },
        {
            "archive_id": "OA7",
            "customer_name": "广州市恒达建材有限公司",
            "credit_code": "",
            "contact_phone": "020-87654321",
            "address": "广州市天河区体育西路1号",
            "updated_at": ts(-50),
        },
        {
            "archive_id": "OA11",
            "customer_name": "王芳",
            "credit_code": None,
            "contact_phone": "150-1234-5678",
            "updated_at": ts(-50),
        },
    ],
    ("oa", "contract_approvals"): [
        {
            "approval_id": "AP1",
            "archive_id": "OA1",
            "contract_no": "HT-2024-001",
            "contract_amount": "100000.00",
            "status": "APPROVED",
            "submitted_at": ts(-40),
            "decided_at": ts(-38),
            "updated_at": ts(-38),
        },
    ],
    ("callcenter", "callers"): [
        {
            "caller_id": "CC1",
            "name": "张伟",
            "phone": "13900001111",
            "alt_phone": None,
            "id_card_no": ID_ZHANGWEI.lower(),
            "company_name": "",
            "updated_at": ts(-4),
        },
        {
            "caller_id": "CC3",
            "name": "赵强",
            "phone": "(021)55556666",
            "alt_phone": "137-0000-2222",
            "company_name": "云帆物流",
            "updated_at": ts(-4),
        },
        {
            "caller_id": "CC6",
            "name": "王芳",
            "phone": "150 1234 5678",
            "email": "WangFang@QQ.com",
            "updated_at": ts(-2),
        },
        {
            "caller_id": "CC10",
            "name": "李 娜",
            "phone": "13300009999",
            "id_card_no": ID_LINA_BAD,
            "updated_at": ts(-2),
        },
        {"caller_id": "CC12", "name": "刘洋", "phone": "13800000000", "updated_at": ts(-2)},
    ],
    ("callcenter", "tickets"): [
        {
            "ticket_id": "TK1",
            "caller_id": "CC1",
            "category": "投诉",
            "priority": "HIGH",
            "status": "Closed",
            "subject": "发票未收到",
            "opened_at": ts(-4),
            "closed_at": ts(-3),
            "updated_at": ts(-3),
        },
        *[
            {
                "ticket_id": ticket_id,
                "caller_id": "CC6",
                "category": "complaint",
                "priority": "normal",
                "status": "open",
                "subject": "发货延迟投诉",
                "opened_at": ts(days),
                "closed_at": None,
                "updated_at": ts(days),
            }
            for ticket_id, days in (("TK2", -6), ("TK3", -2))
        ],
    ],
    ("callcenter", "contact_changes"): [
        {
            "change_id": "CH1",
            "caller_id": "CC6",
            "field": "Phone",
            "old_value": "13500000000",
            "new_value": "150 1234 5678",
            "agent_id": "AG7",
            "changed_at": ts(-2),
        },
    ],
    ("marketing", "leads"): [
        {
            "lead_id": "a1b2c3d4e5f60718:2",
            "lead_name": "李明",
            "mobile": "+86 13812345678",
            "email": "LI.MING@xingchen.com",
            "company_name": "星辰科技",
            "province": "北京",
            "city": "北京",
            "campaign_code": "EXPO24",
            "lead_source": "展会",
            "created_at": "2024/3/5",
            "source_file": "expo.xlsx",
            "source_row": "2",
        },
        {
            "lead_id": "a1b2c3d4e5f60718:3",
            "lead_name": "王芳",
            "mobile": "15012345678",
            "email": " wangfang@qq.com",
            "company_name": None,
            "created_at": "2024年3月5日",
            "source_file": "expo.xlsx",
            "source_row": "3",
        },
        *[
            {
                "lead_id": f"0f0f0f0f0f0f0f0f:{row}",
                "lead_name": name,
                "mobile": "13800000000",
                "email": "test@test.com",
                "company_name": "",
                "created_at": "2024-02-30",
                "source_file": "bad.csv",
                "source_row": str(row),
            }
            for row, name in enumerate(["甲", "乙", "丙", "丁", "戊", "己"], start=2)
        ],
    ],
}

# Records that are the same real customer (source, record id), and pairs that must stay apart.
SAME_CUSTOMER: list[set[tuple[str, str]]] = [
    {("crm", "A001"), ("erp", "C001"), ("oa", "OA1"), ("marketing", "a1b2c3d4e5f60718:2")},
    {("crm", "A002"), ("erp", "C002"), ("callcenter", "CC1")},
    {("erp", "C003"), ("crm", "A003"), ("callcenter", "CC3")},
    {("erp", "C007"), ("oa", "OA7")},
    {("marketing", "a1b2c3d4e5f60718:3"), ("callcenter", "CC6"), ("oa", "OA11")},
]
DIFFERENT_CUSTOMERS: list[tuple[tuple[str, str], tuple[str, str]]] = [
    (("erp", "C004"), ("crm", "A004")),  # share only an invalid USCC
    (("crm", "A002"), ("crm", "A006")),  # two people called 张伟
    (("erp", "C008"), ("crm", "A008")),  # same name key 华信科技, different valid USCCs
    (("erp", "C010"), ("callcenter", "CC10")),  # share only an invalid ID number
    *[
        (("marketing", f"0f0f0f0f0f0f0f0f:{a}"), ("marketing", f"0f0f0f0f0f0f0f0f:{b}"))
        for a, b in [(2, 3), (3, 4), (4, 5), (5, 6), (6, 7)]
    ],  # share a placeholder mobile and email with too many others
    (("marketing", "0f0f0f0f0f0f0f0f:2"), ("callcenter", "CC12")),
]


def load_registry() -> dict[str, Any]:
    return yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))


def customer_entities(registry: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (source["name"], entity["name"])
        for source in registry["sources"]
        for entity in source["entities"]
        if entity.get("customer_entity")
    ]


def _parse_ts(value: Any) -> datetime | None:
    """The extractor's parse of the registry `updated_at` field: ISO-8601 or nothing."""
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def create_raw_tables(conn: psycopg.Connection, registry: dict[str, Any]) -> None:
    """One `raw_<source>.<entity>` table per registry entity, made by the extractors' own DDL."""
    for source in registry["sources"]:
        for entity in source["entities"]:
            ensure_raw_table(conn, f"raw_{source['name']}", entity["name"])


def load_fixture(conn: psycopg.Connection, registry: dict[str, Any]) -> int:
    """Insert RECORDS; each payload lands one minute after the previous one. Returns rows inserted."""
    entities = {(s["name"], e["name"]): e for s in registry["sources"] for e in s["entities"]}
    loaded_at = datetime(2024, 3, 10, tzinfo=UTC)
    rows = 0
    for (source, entity_name), payloads in RECORDS.items():
        entity = entities[(source, entity_name)]
        for raw_payload in payloads:
            # as extraction lands it: personal identifiers hashed (include/identity/pii.py)
            payload = protect_record(raw_payload, entity.get("protected", {}), PII_SALT)
            canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False)
            loaded_at += timedelta(minutes=1)
            conn.execute(
                f'insert into "raw_{source}"."{entity_name}" (_batch_id, _loaded_at, _source, _record_id, '
                "_content_hash, _source_updated_at, payload) values (%s, %s, %s, %s, %s, %s, %s::jsonb)",
                (
                    "fixture-batch-1",
                    loaded_at,
                    source,
                    str(payload[entity["key"]]),
                    hashlib.md5(canonical.encode()).hexdigest(),
                    _parse_ts(payload.get(entity["updated_at"])),
                    canonical,
                ),
            )
            rows += 1
    return rows


def distinct_customer_records(registry: dict[str, Any]) -> set[tuple[str, str]]:
    """(source, record id) of every customer-entity record in the fixture."""
    entities = {(s["name"], e["name"]): e for s in registry["sources"] for e in s["entities"]}
    return {
        (source, str(payload[entities[(source, name)]["key"]]))
        for source, name in customer_entities(registry)
        for payload in RECORDS.get((source, name), [])
    }


def build_raw_database(url: str) -> None:
    """Create the raw tables and load the fixture into the database at `url`."""
    registry = load_registry()
    with psycopg.connect(url, autocommit=True) as conn:
        create_raw_tables(conn, registry)
        load_fixture(conn, registry)
