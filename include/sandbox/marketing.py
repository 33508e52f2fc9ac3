"""Marketing lead exports as people really drop them: UTF-8 and GBK CSVs and XLSX workbooks.

Each file picks its own header spelling for every column (from the registry's ``column_map``),
its own column order and date format, and sometimes an extra column nobody asked for.
Lead ids are ``<first 16 hex of the file's sha256>:<1-based data row>``, so they are known only
once the file's bytes are.
"""

from __future__ import annotations

import csv
import hashlib
import io
import random
import re
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from openpyxl import Workbook

from include.sandbox.stores import CST, entity_spec

LEAD_COLUMNS = (
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
OPTIONAL_COLUMNS = {"email", "company_name", "province", "city", "lead_source"}
EXTRA_COLUMNS = ("备注", "意向产品", "notes", "销售跟进人")
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")
FORMATS = ("csv_utf8", "csv_gbk", "xlsx")


@dataclass
class Lead:
    true_customer_id: str
    values: dict  # canonical field -> value (created_at is a datetime)


@dataclass
class Campaign:
    code: str
    file_format: str
    starts: datetime
    ends: datetime
    leads: list[Lead] = field(default_factory=list)


def make_campaigns(
    rng: random.Random, count: int, start: datetime, end: datetime, prefix: str
) -> list[Campaign]:
    formats = [FORMATS[i % len(FORMATS)] for i in range(count)]
    rng.shuffle(formats)
    span = (end - start).total_seconds()
    campaigns = []
    for i, fmt in enumerate(formats):
        begin = start + (end - start) * (i / count)
        length = max(3600.0, min(span / count * 1.5, (end - begin).total_seconds()))
        finish = begin + timedelta(seconds=length)
        kind = rng.choice(("EXPO", "WEB", "WECHAT", "SEM", "SALON", "DOUYIN"))
        campaigns.append(Campaign(f"{prefix}{begin:%Y%m}-{kind}-{i + 1:03d}", fmt, begin, min(finish, end)))
    return campaigns


def _normalise_zip(data: bytes, modified: datetime) -> bytes:
    """openpyxl stamps the save time into the zip entries and core.xml; pin both so bytes repeat."""
    stamp = modified.strftime("%Y-%m-%dT%H:%M:%SZ")
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            content = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(
                    rb"(<dcterms:(?:modified|created)[^>]*>)[^<]*", rb"\g<1>" + stamp.encode(), content
                )
            dst.writestr(
                zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)),
                content,
                compress_type=zipfile.ZIP_DEFLATED,
            )
    return out.getvalue()


def write_campaign_file(rng: random.Random, campaign: Campaign, folder: Path) -> list[tuple[str, str]]:
    """Write one campaign's leads; returns ``[(lead_id, true_customer_id), ...]`` in row order."""
    column_map = entity_spec("marketing", "leads")["column_map"]
    columns = [c for c in LEAD_COLUMNS if c not in OPTIONAL_COLUMNS or rng.random() < 0.85]
    rng.shuffle(columns)
    headers = [rng.choice(column_map[c]) for c in columns]
    if rng.random() < 0.3:
        headers.insert(rng.randrange(len(headers) + 1), rng.choice(EXTRA_COLUMNS))
        columns.insert(headers.index(next(h for h in headers if h in EXTRA_COLUMNS)), None)
    date_format = rng.choice(DATE_FORMATS)
    leads = sorted(campaign.leads, key=lambda lead: lead.values["created_at"])

    def cell(column: str | None, lead: Lead, for_xlsx: bool):
        if column is None:
            return rng.choice(("", "", "有意向", "待回访", "已加微信"))
        value = lead.values.get(column)
        if column == "created_at":
            local = value.astimezone(CST).replace(tzinfo=None)
            return local.replace(microsecond=0) if for_xlsx else local.strftime(date_format)
        return "" if value is None else value

    folder.mkdir(parents=True, exist_ok=True)
    stem = f"leads_{campaign.code.lower()}"
    if campaign.file_format == "xlsx":
        wb = Workbook(write_only=True)
        ws = wb.create_sheet("线索")
        ws.append(headers)
        for lead in leads:
            ws.append([cell(c, lead, True) for c in columns])
        buf = io.BytesIO()
        wb.save(buf)
        data = _normalise_zip(buf.getvalue(), campaign.ends)
        name = f"{stem}.xlsx"
    else:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\r\n")
        writer.writerow(headers)
        for lead in leads:
            writer.writerow([cell(c, lead, False) for c in columns])
        if campaign.file_format == "csv_gbk":
            data = text.getvalue().encode("gbk", errors="replace")
            name = f"{stem}_gbk.csv"
        else:
            data = text.getvalue().encode("utf-8-sig" if rng.random() < 0.5 else "utf-8")
            name = f"{stem}.csv"
    (folder / name).write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()[:16]
    return [(f"{digest}:{n}", lead.true_customer_id) for n, lead in enumerate(leads, start=1)]
