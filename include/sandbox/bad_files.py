"""A quarantine corpus: marketing lead files as they arrive on a bad day, with exact expectations.

``write_bad_files(folder)`` writes ten files and returns ``{file name: Expectation}``, saying how
many data rows a correct loader sees, which of them are good, which are bad and why, and what is
wrong with the file as a whole, so tests of the file extraction can assert exact counts.

Rules the expectations follow (a loader that quarantines rows should apply the same):

- Data rows are numbered from 1 after the header (as in ``lead_id``); every record of these files
  sits on one physical line, and none is blank.
- A row is bad, with the first reason that applies, when
  ``column_count``: it has a different number of fields than the header (broken quoting),
  ``oversized_field``: one of its fields is longer than ``MAX_FIELD_CHARS`` characters,
  ``no_contact``: ``lead_name``, ``mobile`` and ``email`` are all empty (nobody to contact),
  ``unparseable_date``: ``created_at`` is not empty and is not a date.
- Headers map to canonical fields through the registry's ``column_map``; ``unmapped_columns``
  lists the headers that map to nothing (their values are extra data, never a reason to reject).
- ``file_issue`` is ``empty_file`` (0 bytes), ``header_only`` (a header, no rows) or
  ``mostly_bad`` (more than ``MOSTLY_BAD_SHARE`` of the rows are bad: likely the wrong file, worth
  a human look before landing even its good rows), else None.
"""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

from include.sandbox import phones
from include.sandbox.marketing import _normalise_zip

MAX_FIELD_CHARS = 65_536
MOSTLY_BAD_SHARE = 0.5
HUGE_FIELD_CHARS = 10 * 1024 * 1024  # the 10 MB field (ASCII, so also 10 MiB of bytes)
REASONS = {
    "column_count": "the row has a different number of fields than the header (broken quoting)",
    "oversized_field": f"a field is longer than {MAX_FIELD_CHARS:,} characters",
    "no_contact": "lead_name, mobile and email are all empty: nobody to contact",
    "unparseable_date": "created_at is not a date",
}
FILE_ISSUES = {
    "empty_file": "the file is 0 bytes: not even a header",
    "header_only": "a header and no data rows",
    "mostly_bad": f"more than {MOSTLY_BAD_SHARE:.0%} of the data rows are bad",
}


@dataclass(frozen=True)
class Expectation:
    """What a correct loader makes of one file."""

    file_format: str  # "csv" | "xlsx"
    encoding: str | None  # "gbk", "utf-8-sig" (with BOM), "utf-8"; None for xlsx and the empty file
    rows: int  # data rows after the header
    good: int
    bad: int
    bad_rows: dict[int, str]  # data row number -> reason code (a key of REASONS)
    file_issue: str | None  # a key of FILE_ISSUES, or None
    unmapped_columns: tuple[str, ...]
    why: str
    good_rows: tuple[int, ...] = field(default=())

    def as_dict(self) -> dict:
        return asdict(self) | {
            "unmapped_columns": list(self.unmapped_columns),
            "good_rows": list(self.good_rows),
        }


def _expect(
    file_format: str,
    encoding: str | None,
    rows: int,
    bad_rows: dict[int, str],
    why: str,
    unmapped: tuple[str, ...] = (),
    file_issue: str | None = None,
) -> Expectation:
    if file_issue is None and rows and len(bad_rows) / rows > MOSTLY_BAD_SHARE:
        file_issue = "mostly_bad"
    return Expectation(
        file_format=file_format,
        encoding=encoding,
        rows=rows,
        good=rows - len(bad_rows),
        bad=len(bad_rows),
        bad_rows=dict(sorted(bad_rows.items())),
        file_issue=file_issue,
        unmapped_columns=unmapped,
        why=why,
        good_rows=tuple(n for n in range(1, rows + 1) if n not in bad_rows),
    )


# --- plausible good rows ----------------------------------------------------------------------------
NAMES = ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊", "赵敏", "黄强", "周杰", "吴婷", "徐涛", "孙丽")
COMPANIES = (
    "杭州云帆科技有限公司",
    "深圳市华创电子有限公司",
    "北京博远咨询有限公司",
    "上海申通物流有限公司",
    "成都天府软件有限公司",
    "广州南方贸易有限公司",
)
PLACES = (
    ("浙江省", "杭州市"),
    ("广东省", "深圳市"),
    ("北京市", "北京市"),
    ("上海市", "上海市"),
    ("四川省", "成都市"),
)
MOBILE_STYLES = ("digits", "dashes", "national", "plus86_space", "e164")


def _good_row(rng: random.Random, n: int) -> dict[str, str | datetime]:
    name = NAMES[n % len(NAMES)]
    province, city = PLACES[n % len(PLACES)]
    mobile = phones.format_mobile(phones.make_mobile(rng), MOBILE_STYLES[n % len(MOBILE_STYLES)])
    return {
        "lead_name": name,
        "mobile": mobile,
        "email": f"lead{n:03d}@example.cn" if n % 3 else "",
        "company_name": COMPANIES[n % len(COMPANIES)],
        "province": province,
        "city": city,
        "campaign_code": "MKT202601-EXPO-901",
        "lead_source": ("展会", "官网", "微信")[n % 3],
        "created_at": datetime(2026, 1, 5, 9 + n % 8, (7 * n) % 60),
    }


COLUMNS = (
    "lead_name",
    "mobile",
    "email",
    "company_name",
    "province",
    "city",
    "campaign_code",
    "lead_source",
    "created_at",
)
ZH_HEADERS = ("姓名", "手机号", "邮箱", "公司名称", "省份", "城市", "活动编号", "来源", "登记日期")
EN_HEADERS = ("name", "mobile", "email", "company", "province", "city", "campaign", "source", "date")


def _csv_line(values: list[str]) -> str:
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n").writerow(values)
    return text.getvalue()


def _cells(row: dict, date_format: str = "%Y-%m-%d %H:%M:%S") -> list[str]:
    return [row[c].strftime(date_format) if c == "created_at" else str(row[c]) for c in COLUMNS]


def _write_csv(path: Path, lines: list[str], encoding: str) -> None:
    path.write_bytes("".join(lines).encode(encoding))


# --- the corpus ---------------------------------------------------------------------------------------
def write_bad_files(folder: Path) -> dict[str, Expectation]:
    """Write the corpus into ``folder`` (created if missing); the same bytes on every call."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random("c360-bad-files")
    out: dict[str, Expectation] = {}

    # 1. GBK with Chinese headers, as Excel on a Chinese Windows saves it: all valid.
    rows = [_good_row(rng, n) for n in range(1, 9)]
    name = "leads_gbk_chinese_headers.csv"
    _write_csv(
        folder / name,
        [_csv_line(list(ZH_HEADERS)), *(_csv_line(_cells(r, "%Y/%m/%d %H:%M")) for r in rows)],
        "gbk",
    )
    out[name] = _expect("csv", "gbk", 8, {}, "GBK-encoded (not UTF-8) with Chinese headers; every row valid")

    # 2. UTF-8 with a byte-order mark before the first header: all valid.
    rows = [_good_row(rng, n) for n in range(11, 17)]
    name = "leads_utf8_bom.csv"
    _write_csv(
        folder / name,
        [_csv_line(list(EN_HEADERS)), *(_csv_line(_cells(r, "%Y-%m-%d")) for r in rows)],
        "utf-8-sig",
    )
    out[name] = _expect(
        "csv",
        "utf-8-sig",
        6,
        {},
        "UTF-8 with a BOM: the first header must still read 'name'; every row valid",
    )

    # 3. Broken quoting: a quote wrapping two fields (one field short), an unquoted comma (one too
    #    many). Good rows carry properly quoted commas and doubled quotes, which are fine.
    lines = [_csv_line(list(ZH_HEADERS))]
    bad: dict[int, str] = {}
    for n in range(1, 11):
        cells = _cells(_good_row(rng, 20 + n))
        if n in (3, 8):  # "name,mobile" typed inside one pair of quotes
            lines.append(f'"{cells[0]},{cells[1]}",' + ",".join(cells[2:]) + "\r\n")
            bad[n] = "column_count"
        elif n == 6:  # a company name with a comma nobody quoted
            cells[3] = "杭州云帆科技有限公司,滨江分公司"
            lines.append(",".join(cells) + "\r\n")
            bad[n] = "column_count"
        else:
            if n == 2:
                cells[3] = "北京博远咨询有限公司,朝阳分部"  # quoted by the writer: valid
            if n == 5:
                cells[3] = '上海"申通"物流有限公司'  # doubled quotes by the writer: valid
            lines.append(_csv_line(cells))
    name = "leads_broken_quoting.csv"
    _write_csv(folder / name, lines, "utf-8")
    out[name] = _expect(
        "csv",
        "utf-8",
        10,
        bad,
        "rows 3 and 8 quote two fields as one (8 fields), row 6 has an unquoted comma (10 fields); "
        "rows 2 and 5 hold a quoted comma and doubled quotes, which are valid CSV",
    )

    # 4. Empty: 0 bytes.
    name = "leads_empty.csv"
    (folder / name).write_bytes(b"")
    out[name] = _expect("csv", None, 0, {}, "0 bytes: no header, no rows", file_issue="empty_file")

    # 5. Header only.
    name = "leads_header_only.csv"
    _write_csv(folder / name, [_csv_line(list(ZH_HEADERS))], "utf-8")
    out[name] = _expect("csv", "utf-8", 0, {}, "a header line and nothing else", file_issue="header_only")

    # 6. One 10 MB field: someone pasted an image into the notes column.
    headers = [*ZH_HEADERS, "备注"]
    lines = [_csv_line(headers)]
    for n in range(1, 6):
        note = "已加微信" if n != 3 else "data:image/png;base64," + "A" * (HUGE_FIELD_CHARS - 22)
        lines.append(_csv_line([*_cells(_good_row(rng, 40 + n)), note]))
    name = "leads_huge_field.csv"
    _write_csv(folder / name, lines, "utf-8")
    out[name] = _expect(
        "csv",
        "utf-8",
        5,
        {3: "oversized_field"},
        f"row 3's 备注 is one {HUGE_FIELD_CHARS:,}-character field (Python's csv module refuses fields over "
        "131,072 characters unless csv.field_size_limit is raised); the other 4 rows are valid",
        unmapped=("备注",),
    )

    # 7. Dates nobody can parse, in a few rows.
    bad_dates = {2: "2025-13-45", 5: "昨天下午3点", 9: "2025-02-30 10:00"}
    lines = [_csv_line(list(EN_HEADERS))]
    for n in range(1, 11):
        cells = _cells(_good_row(rng, 50 + n), "%Y/%m/%d %H:%M")
        if n in bad_dates:
            cells[-1] = bad_dates[n]
        lines.append(_csv_line(cells))
    name = "leads_bad_dates.csv"
    _write_csv(folder / name, lines, "utf-8")
    out[name] = _expect(
        "csv",
        "utf-8",
        10,
        dict.fromkeys(bad_dates, "unparseable_date"),
        "rows 2, 5 and 9 have dates that do not exist or are words (month 13, '昨天下午3点', "
        "30 February); the other 7 rows are valid",
    )

    # 8. Rows with no name, no phone and no email (company and campaign only): nobody to contact.
    #    Rows with just one of the three are fine.
    lines = [_csv_line(list(ZH_HEADERS))]
    no_contact = (2, 4, 7)
    for n in range(1, 9):
        row = _good_row(rng, 60 + n)
        if n in no_contact:
            row |= {"lead_name": "", "mobile": "", "email": ""}
        elif n == 3:
            row |= {"lead_name": "", "mobile": "", "email": "only.email@example.cn"}
        elif n == 5:
            row |= {"lead_name": "", "email": ""}  # mobile only
        elif n == 8:
            row |= {"mobile": "", "email": ""}  # name only
        lines.append(_csv_line(_cells(row)))
    name = "leads_no_contact.csv"
    _write_csv(folder / name, lines, "utf-8")
    out[name] = _expect(
        "csv",
        "utf-8",
        8,
        dict.fromkeys(no_contact, "no_contact"),
        "rows 2, 4 and 7 have no name, mobile or email; rows 3, 5 and 8 have just one of them and are valid",
    )

    # 9. Mostly garbage: a valid header, then 9 bad rows and 3 good ones.
    lines = [_csv_line(list(ZH_HEADERS))]
    garbage = {
        1: ("##########", "column_count"),
        2: ("锟斤拷锟斤拷烫烫烫", "column_count"),
        4: (";;;;;;;;", "column_count"),
        5: ("=SUM(A1:A9)", "column_count"),
        7: ("导出时间：2026-01-05,,共 12 条", "column_count"),
        8: (None, "no_contact"),
        10: (None, "unparseable_date"),
        11: (None, "no_contact"),
        12: ("-----,-----", "column_count"),
    }
    for n in range(1, 13):
        row = _good_row(rng, 70 + n)
        if n not in garbage:
            lines.append(_csv_line(_cells(row)))
            continue
        text, reason = garbage[n]
        if text is not None:
            lines.append(text + "\r\n")
        elif reason == "no_contact":
            lines.append(_csv_line(_cells(row | {"lead_name": "", "mobile": "", "email": ""})))
        else:
            lines.append(_csv_line([*_cells(row)[:-1], "#VALUE!"]))
    name = "leads_mostly_garbage.csv"
    _write_csv(folder / name, lines, "utf-8")
    out[name] = _expect(
        "csv",
        "utf-8",
        12,
        {n: reason for n, (_, reason) in garbage.items()},
        "9 of 12 rows are junk (banners, mojibake, formulas, separators, an Excel #VALUE! date, empty "
        "contacts): the file is mostly bad; rows 3, 6 and 9 are valid",
    )

    # 10. XLSX with a column nobody mapped; dates as real Excel dates, one mobile as a number.
    wb = Workbook(write_only=True)
    ws = wb.create_sheet("线索")
    ws.append(["客户姓名", "手机", "电子邮箱", "公司", "城市", "活动", "创建时间", "意向产品"])
    for n in range(1, 7):
        row = _good_row(rng, 80 + n)
        mobile = int(phones.make_mobile(rng).removeprefix("+86")) if n == 2 else row["mobile"]
        ws.append(
            [
                row["lead_name"],
                mobile,
                row["email"] or None,
                row["company_name"],
                row["city"],
                row["campaign_code"],
                row["created_at"],
                ("ERP实施", "CRM订阅", "数据中台")[n % 3],
            ]
        )
    buf = io.BytesIO()
    wb.save(buf)
    name = "leads_extra_column.xlsx"
    (folder / name).write_bytes(_normalise_zip(buf.getvalue(), datetime(2026, 1, 5, 18, 0)))
    out[name] = _expect(
        "xlsx",
        None,
        6,
        {},
        "XLSX with an extra column 意向产品 that maps to no canonical field (kept as extra data); "
        "row 2's mobile is a number cell; every row valid",
        unmapped=("意向产品",),
    )
    return out


def expectations_json(expectations: dict[str, Expectation]) -> str:
    return json.dumps({n: e.as_dict() for n, e in expectations.items()}, ensure_ascii=False, indent=2)
