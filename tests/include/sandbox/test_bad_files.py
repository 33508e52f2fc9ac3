"""The quarantine corpus: each file really is what its expectation says, checked by an independent reader."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
import unicodedata
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest

from include.config import PROJECT_ROOT
from include.sandbox.bad_files import (
    FILE_ISSUES,
    HUGE_FIELD_CHARS,
    MAX_FIELD_CHARS,
    REASONS,
    Expectation,
    write_bad_files,
)
from include.sandbox.stores import entity_spec

COLUMN_MAP = entity_spec("marketing", "leads")["column_map"]
SYNONYMS = {
    unicodedata.normalize("NFKC", s).strip().lower(): f
    for f, names in COLUMN_MAP.items()
    for s in [f, *names]
}
DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Expectation]]:
    folder = tmp_path_factory.mktemp("bad_files")
    return folder, write_bad_files(folder)


def decode(data: bytes, encoding: str) -> str:
    if encoding == "gbk":
        with pytest.raises(UnicodeDecodeError):
            data.decode("utf-8")
    if encoding == "utf-8-sig":
        assert data.startswith(b"\xef\xbb\xbf")
    if encoding == "utf-8":
        assert not data.startswith(b"\xef\xbb\xbf")
    return data.decode(encoding)


def table_of(path: Path, e: Expectation) -> list[list]:
    if e.file_format == "xlsx":
        wb = openpyxl.load_workbook(path, read_only=True)
        return [list(row) for row in wb.worksheets[0].iter_rows(values_only=True)]
    text = decode(path.read_bytes(), e.encoding)
    limit = csv.field_size_limit()
    csv.field_size_limit(HUGE_FIELD_CHARS * 2)
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)
    if rows:  # every record on one physical line, so row numbers are line numbers
        assert len(text.splitlines()) == len(rows)
    return rows


def reason_for(headers: list[str], row: list) -> str | None:
    """The corpus's rules, applied by hand: the first reason that holds, or None for a good row."""
    if len(row) != len(headers):
        return "column_count"
    if any(len(str(v)) > MAX_FIELD_CHARS for v in row if v is not None):
        return "oversized_field"
    record = {SYNONYMS.get(str(h).strip().lower(), h): v for h, v in zip(headers, row, strict=True)}
    if all(record.get(f) in (None, "") for f in ("lead_name", "mobile", "email")):
        return "no_contact"
    created = record.get("created_at")
    if created not in (None, "") and not isinstance(created, datetime):
        for fmt in DATE_FORMATS:
            try:
                datetime.strptime(created, fmt)
                break
            except ValueError:
                continue
        else:
            return "unparseable_date"
    return None


def test_the_corpus_has_every_case_the_brief_asks_for(corpus) -> None:
    folder, expectations = corpus
    assert sorted(p.name for p in folder.iterdir()) == sorted(expectations)
    assert len(expectations) == 10
    counts = {n: (e.rows, e.good, e.bad, e.file_issue) for n, e in expectations.items()}
    assert counts == {
        "leads_gbk_chinese_headers.csv": (8, 8, 0, None),
        "leads_utf8_bom.csv": (6, 6, 0, None),
        "leads_broken_quoting.csv": (10, 7, 3, None),
        "leads_empty.csv": (0, 0, 0, "empty_file"),
        "leads_header_only.csv": (0, 0, 0, "header_only"),
        "leads_huge_field.csv": (5, 4, 1, None),
        "leads_bad_dates.csv": (10, 7, 3, None),
        "leads_no_contact.csv": (8, 5, 3, None),
        "leads_mostly_garbage.csv": (12, 3, 9, "mostly_bad"),
        "leads_extra_column.xlsx": (6, 6, 0, None),
    }
    for e in expectations.values():
        assert e.good + e.bad == e.rows == len(e.good_rows) + len(e.bad_rows)
        assert set(e.bad_rows.values()) <= set(REASONS)
        assert e.file_issue is None or e.file_issue in FILE_ISSUES
        assert e.why


@pytest.mark.parametrize(
    "name",
    [
        "leads_gbk_chinese_headers.csv",
        "leads_utf8_bom.csv",
        "leads_broken_quoting.csv",
        "leads_header_only.csv",
        "leads_huge_field.csv",
        "leads_bad_dates.csv",
        "leads_no_contact.csv",
        "leads_mostly_garbage.csv",
        "leads_extra_column.xlsx",
    ],
)
def test_each_file_is_what_its_expectation_says(corpus, name: str) -> None:
    folder, expectations = corpus
    e = expectations[name]
    headers, *rows = table_of(folder / name, e)
    assert len(rows) == e.rows
    unmapped = tuple(h for h in headers if str(h).strip().lower() not in SYNONYMS)
    assert unmapped == e.unmapped_columns
    mapped = {SYNONYMS[str(h).strip().lower()] for h in headers if h not in unmapped}
    assert {"lead_name", "mobile", "email", "created_at"} <= mapped
    found = {n: reason_for(headers, row) for n, row in enumerate(rows, start=1)}
    assert {n: r for n, r in found.items() if r} == e.bad_rows
    assert tuple(n for n, r in found.items() if r is None) == e.good_rows


def test_the_awkward_details_are_really_there(corpus) -> None:
    folder, e = corpus
    assert (folder / "leads_empty.csv").stat().st_size == 0
    gbk = (folder / "leads_gbk_chinese_headers.csv").read_bytes().decode("gbk").splitlines()[0]
    assert gbk.split(",")[0] == "姓名" and all(not h.isascii() for h in gbk.split(","))
    bom = (folder / "leads_utf8_bom.csv").read_bytes()
    assert bom.decode("utf-8").split(",")[0] == "\ufeffname"  # a naive reader gets the BOM in the header
    huge = table_of(folder / "leads_huge_field.csv", e["leads_huge_field.csv"])
    assert [len(r[-1]) for r in huge[1:]].count(HUGE_FIELD_CHARS) == 1 and len(
        huge[3][-1]
    ) == HUGE_FIELD_CHARS
    with pytest.raises(csv.Error, match="field larger than field limit"):  # what a default csv reader hits
        list(csv.reader(io.StringIO((folder / "leads_huge_field.csv").read_text(encoding="utf-8"))))
    broken = table_of(folder / "leads_broken_quoting.csv", e["leads_broken_quoting.csv"])
    assert [len(r) for r in broken[1:]] == [9, 9, 8, 9, 9, 10, 9, 8, 9, 9]
    assert broken[2][3] == "北京博远咨询有限公司,朝阳分部" and broken[5][3] == '上海"申通"物流有限公司'
    xlsx = table_of(folder / "leads_extra_column.xlsx", e["leads_extra_column.xlsx"])
    assert isinstance(xlsx[2][1], int) and all(isinstance(r[6], datetime) for r in xlsx[1:])


def test_same_bytes_every_time(corpus, tmp_path: Path) -> None:
    folder, _ = corpus
    write_bad_files(tmp_path)

    def digest(d: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in d.iterdir()}

    assert digest(tmp_path) == digest(folder)


def test_cli_writes_the_files_and_the_expectations(tmp_path: Path) -> None:
    env = os.environ | {"PYTHONPATH": str(PROJECT_ROOT), "C360_DATA_DIR": str(tmp_path / "data")}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "include.sandbox",
            "bad-files",
            "--into",
            str(tmp_path / "drop"),
            "--expectations",
            str(tmp_path / "expected.json"),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "leads_mostly_garbage.csv" in result.stdout and "[mostly_bad]" in result.stdout
    written = json.loads((tmp_path / "expected.json").read_text(encoding="utf-8"))
    expected = {n: e.as_dict() for n, e in write_bad_files(tmp_path / "again").items()}
    assert written == json.loads(json.dumps(expected))  # JSON turns the row numbers into strings
    assert written["leads_no_contact.csv"]["bad_rows"] == {
        "2": "no_contact",
        "4": "no_contact",
        "7": "no_contact",
    }
    assert sorted(p.name for p in (tmp_path / "drop").iterdir()) == sorted(written)
