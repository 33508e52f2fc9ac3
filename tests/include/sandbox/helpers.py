"""Read a generated sandbox back the way a test wants it: plain dicts, per system."""

from __future__ import annotations

import csv
import hashlib
import io
import sqlite3
import unicodedata
from pathlib import Path

import openpyxl
import psycopg

from include.sandbox.stores import app_tables

CUSTOMER_TABLES = {"crm": "crm_accounts", "oa": "oa_customer_archive", "callcenter": "callcenter_callers"}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def app_rows(data_dir: Path, table: str) -> list[dict]:
    fields = app_tables()[table].fields
    with sqlite3.connect(data_dir / "sandbox" / "apps.sqlite") as conn:
        rows = conn.execute(f"select {', '.join(fields)} from {table} order by 1").fetchall()
    return [dict(zip(fields, r, strict=True)) for r in rows]


def erp_rows(url: str, table: str) -> list[dict]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        return cur.execute(f"select * from erp.{table} order by 1").fetchall()


def marketing_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "landing" / "marketing").iterdir())


def read_marketing_file(path: Path) -> list[list[str]]:
    """All rows (header first) of one lead file, decoded the way its format says."""
    if path.suffix == ".xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        return [["" if v is None else str(v) for v in row] for row in wb.active.iter_rows(values_only=True)]
    encoding = "gbk" if path.stem.endswith("_gbk") else "utf-8-sig"
    return list(csv.reader(io.StringIO(path.read_bytes().decode(encoding), newline="")))


def lead_ids(path: Path) -> list[str]:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return [f"{digest}:{n}" for n in range(1, len(read_marketing_file(path)))]


def phone_digits(raw: str | None) -> str | None:
    """A typed phone number reduced to its national digits (full-width folded, 86/0086 dropped)."""
    if not raw:
        return None
    digits = "".join(c for c in unicodedata.normalize("NFKC", raw) if c.isdigit())
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) - len(prefix) == 11:
            return digits[len(prefix) :]
    return digits
