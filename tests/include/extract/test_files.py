"""Lead files: encodings, header synonyms, unmapped columns, archiving."""

from __future__ import annotations

from openpyxl import Workbook

from include.extract.files import archive_file, header_mapping, pending_files, read_lead_file
from include.registry import get_source

COLUMN_MAP = get_source("marketing").entity("leads").column_map


def test_headers_map_case_width_and_space_insensitively():
    mapping = header_mapping(["手机号", " E-Mail ", "Company Name", "ＣＩＴＹ", "备注"], COLUMN_MAP)
    assert mapping == {0: "mobile", 1: "email", 2: "company_name", 3: "city", 4: "备注"}


def test_gbk_csv_reads_with_ids_from_content(tmp_path):
    path = tmp_path / "leads_gbk.csv"
    path.write_bytes(
        "姓名,手机,邮箱\n张伟,138-1234-5678,ZW@Example.com\n,,\n李娜,+86 13900001111,\n".encode("gbk")
    )
    records = list(read_lead_file(path, COLUMN_MAP))
    assert [(r["lead_name"], r["mobile"], r["email"], r["source_row"]) for r in records] == [
        ("张伟", "138-1234-5678", "ZW@Example.com", 1),
        ("李娜", "+86 13900001111", None, 3),
    ]
    assert records[0]["lead_id"].endswith(":1") and len(records[0]["lead_id"]) == 18
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(path.read_bytes())
    assert [r["lead_id"] for r in read_lead_file(copy, COLUMN_MAP)] == [r["lead_id"] for r in records]


def test_xlsx_and_utf8_bom(tmp_path):
    wb = Workbook()
    wb.active.append(["Name", "Mobile", "活动编号"])
    wb.active.append(["陈静", 13700002222, "CMP-01"])
    wb.save(tmp_path / "b.xlsx")
    (tmp_path / "a.csv").write_bytes("\ufeffname,phone\n赵磊,０１０-１２３４５６７８\n".encode())
    (tmp_path / "notes.txt").write_text("not a lead file")
    files = pending_files(tmp_path, "*.{csv,xlsx}")
    assert [p.name for p in files] == ["a.csv", "b.xlsx"]
    assert next(read_lead_file(files[0], COLUMN_MAP))["mobile"] == "０１０-１２３４５６７８"
    xlsx = next(read_lead_file(files[1], COLUMN_MAP))
    assert (xlsx["lead_name"], xlsx["mobile"], xlsx["campaign_code"]) == ("陈静", "13700002222", "CMP-01")


def test_archive_keeps_every_copy(tmp_path):
    for _ in range(2):
        (tmp_path / "x.csv").write_text("name\n王五\n")
        archive_file(tmp_path / "x.csv")
    assert sorted(p.name for p in (tmp_path / "archive").iterdir()) == ["x.1.csv", "x.csv"]
    assert pending_files(tmp_path, "*.csv") == []
