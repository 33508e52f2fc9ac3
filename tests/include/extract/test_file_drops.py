"""File drops against the sandbox's quarantine corpus: exact good/bad counts per file and reason."""

from __future__ import annotations

import shutil

import psycopg
import pytest

from include.extract.file_drops import FilesRejected, extract_files
from include.extract.files import file_sha256
from include.registry import get_source
from include.sandbox.bad_files import write_bad_files

MARKETING = get_source("marketing")
LEADS = MARKETING.entity("leads")
REASON_CODES = {
    "broken row": "column_count",
    "unreadable CSV row": "column_count",
    "oversized field": "oversized_field",
    "no identifying field": "no_contact",
    "unparseable 'created_at'": "unparseable_date",
}


def _code(reason: str) -> str:
    return next(code for prefix, code in REASON_CODES.items() if reason.startswith(prefix))


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_LANDING_DIR", str(tmp_path / "landing"))
    folder = tmp_path / "landing" / "marketing"
    expectations = write_bad_files(folder)
    shas = {name: file_sha256(folder / name)[:16] for name in expectations}
    return folder, expectations, shas


def test_every_file_lands_its_good_rows_and_quarantines_the_rest(corpus, fresh_db):
    folder, expectations, shas = corpus
    mostly_bad = [n for n, e in expectations.items() if e.file_issue == "mostly_bad"]
    assert mostly_bad, "the corpus should hold a mostly-bad file"
    with pytest.raises(FilesRejected, match=mostly_bad[0]):
        extract_files(MARKETING, LEADS, fresh_db.url, run_id="corpus-1")
    with psycopg.connect(fresh_db.url) as conn:
        landed = conn.execute("select _record_id from raw_marketing.leads").fetchall()
        quarantined = conn.execute("select record_id, reason from ops.quarantine").fetchall()
        run = conn.execute("select status, rows_quarantined from ops.extract_runs").fetchone()
    for name, expected in expectations.items():
        prefix = shas[name] + ":"
        good = sorted(int(r[0].split(":")[1]) for r in landed if r[0].startswith(prefix))
        bad = {int(r[0].split(":")[1]): _code(r[1]) for r in quarantined if r[0] and r[0].startswith(prefix)}
        if expected.file_issue == "mostly_bad":
            assert (good, bad) == ([], {}), name
            assert (folder / "rejected" / name).exists()
            assert "rows are bad" in (folder / "rejected" / f"{name}.reason.txt").read_text()
            continue
        assert len(good) == expected.good, name
        assert bad == {int(k): v for k, v in expected.bad_rows.items()}, name
        assert (folder / "archive" / name).exists(), name
    assert run == ("rejected", sum(e.bad for e in expectations.values() if e.file_issue != "mostly_bad"))


def test_the_same_file_dropped_again_under_another_name_lands_once(corpus, fresh_db):
    folder, expectations, _ = corpus
    good_file = next(n for n, e in expectations.items() if e.file_issue is None and e.bad == 0 and e.good > 0)
    for name in expectations:
        if name != good_file:
            (folder / name).unlink()
    first = extract_files(MARKETING, LEADS, fresh_db.url)
    shutil.copy(folder / "archive" / good_file, folder / f"copy_of_{good_file}")
    again = extract_files(MARKETING, LEADS, fresh_db.url)
    assert (first.inserted, again.received, again.inserted) == (expectations[good_file].good, 0, 0)
    assert (folder / "archive" / f"copy_of_{good_file}").exists()
