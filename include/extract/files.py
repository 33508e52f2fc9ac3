"""Read dropped lead files (CSV in UTF-8 or GBK, XLSX) into records with canonical field names.

Column headers are matched to canonical fields through the registry's ``column_map``
(case-, width- and space-insensitive); columns that map to nothing are kept under their
own header, so nothing a person typed is lost.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import re
import shutil
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

ARCHIVE_DIR = "archive"


def _norm_header(header: str) -> str:
    return re.sub(r"[\s_\-]+", " ", unicodedata.normalize("NFKC", str(header))).strip().lower()


def header_mapping(headers: list[str], column_map: dict[str, list[str]]) -> dict[int, str]:
    """Position -> canonical field name (or the original header when nothing maps)."""
    synonyms = {_norm_header(s): field for field, names in column_map.items() for s in [field, *names]}
    mapping: dict[int, str] = {}
    used: set[str] = set()
    for i, header in enumerate(headers):
        if header is None or str(header).strip() == "":
            continue
        field = synonyms.get(_norm_header(header))
        if field is None or field in used:
            field = str(header).strip()
        used.add(field)
        mapping[i] = field
    return mapping


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode(data: bytes) -> str:
    """UTF-8 (with or without BOM) first; GBK exports from Excel/WPS are GB18030-decodable."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("gb18030")


#: Fields longer than csv's default 128 K limit are read whole, so landing can quarantine the row
#: with its reason (oversized field) instead of the reader dying on it.
CSV_FIELD_LIMIT = 64 * 1024 * 1024


def _next_row(reader) -> list[str]:
    """``next(reader)`` with the larger field limit; csv's limit is process-wide, so put it back."""
    previous = csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        return next(reader)
    finally:
        csv.field_size_limit(previous)


def _rows(path: Path) -> Iterator[tuple[list[Any], str, str | None]]:
    """Yield (cells, raw text, parse error) per row; XLSX rows' raw text is their cells joined."""
    if path.suffix.lower() == ".xlsx":
        workbook = load_workbook(path, read_only=True, data_only=True)
        try:
            for row in workbook.worksheets[0].iter_rows(values_only=True):
                cells = list(row)
                yield cells, ",".join("" if c is None else str(c) for c in cells), None
        finally:
            workbook.close()
        return
    lines = _decode(path.read_bytes()).splitlines(keepends=True)
    reader = csv.reader(iter(lines))
    consumed = 0
    while True:
        try:
            cells = _next_row(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raw = "".join(lines[consumed : reader.line_num])
            consumed = reader.line_num
            yield [], raw, f"unreadable CSV row: {exc}"
            continue
        raw = "".join(lines[consumed : reader.line_num])
        consumed = reader.line_num
        yield cells, raw, None


def read_lead_file(
    path: Path, column_map: dict[str, list[str]], rejects: list[tuple[str | None, str, str]] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield one record per non-empty data row, keyed ``<sha256[:16]>:<row number>``.

    Rows the reader cannot take apart (broken quoting, more or fewer cells than the header)
    are appended to ``rejects`` as ``(lead id, raw text, reason)`` instead.
    """
    sha = file_sha256(path)[:16]
    rows = _rows(path)
    first = next(rows, None)
    if first is None:
        return
    headers = [str(h) if h is not None else "" for h in first[0]]
    mapping = header_mapping(headers, column_map)
    width = len(headers)
    for number, (row, raw, problem) in enumerate(rows, start=1):
        if not problem and not any(cell not in (None, "") for cell in row):
            continue
        lead_id = f"{sha}:{number}"
        if not problem and path.suffix.lower() != ".xlsx" and len(row) != width:
            problem = f"broken row: {len(row)} cells where the header has {width} (quoting or delimiters)"
        if problem:
            if rejects is not None:
                rejects.append((lead_id, f"{path.name} row {number}: {raw}", problem))
            continue
        record: dict[str, Any] = {
            field: (None if i >= len(row) or row[i] in (None, "") else str(row[i]).strip())
            for i, field in mapping.items()
        }
        record.update(lead_id=lead_id, source_file=path.name, source_row=number)
        yield record


def pending_files(folder: Path, pattern: str) -> list[Path]:
    """Files waiting in the landing folder, oldest name first (``*.{csv,xlsx}`` braces allowed)."""
    alternatives = re.match(r"^(.*)\{(.+)\}(.*)$", pattern)
    patterns = (
        [alternatives[1] + alt + alternatives[3] for alt in alternatives[2].split(",")]
        if alternatives
        else [pattern]
    )
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and any(fnmatch.fnmatch(p.name.lower(), pt) for pt in patterns)
    )


def archive_file(path: Path) -> Path:
    """Move a loaded file into ``archive/`` next to it; never overwrites an earlier copy."""
    target_dir = path.parent / ARCHIVE_DIR
    target_dir.mkdir(exist_ok=True)
    target = target_dir / path.name
    n = 1
    while target.exists():
        target = target_dir / f"{path.stem}.{n}{path.suffix}"
        n += 1
    shutil.move(str(path), target)
    return target
