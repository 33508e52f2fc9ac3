"""Resident ID numbers: standardised, checked and hashed before anything lands."""

from __future__ import annotations

import hashlib

import psycopg
import pytest

from include.extract.landing import LandingResult, ensure_raw_table, land_records
from include.identity.pii import normalize_resident_id, protect_record, resident_id_is_valid

ZHANG_WEI = "11010519850307006X"  # valid, check character X


@pytest.mark.parametrize(
    ("typed", "valid"),
    [
        (ZHANG_WEI, True),
        ("11010519850307006x", True),  # lower-case x
        ("110105 1985 0307 006X", True),  # spaces
        ("110105-19850307-006X", True),  # dashes
        ("１１０１０５１９８５０３０７００６Ｘ", True),  # full-width
        ("440306199001011236", True),
        ("440306199001011235", False),  # wrong check digit
        ("110105198513070063", False),  # month 13
        ("110105190002300069", False),  # 30 February 1900
        ("11010519850307006", False),  # 17 characters
        ("010105198503070060", False),  # area code starting with 0
        ("", False),
        (None, False),
    ],
)
def test_resident_id_checksum_and_standardisation(typed, valid):
    assert resident_id_is_valid(normalize_resident_id(typed)) is valid


def test_protect_record_replaces_the_number_with_its_salted_hash_and_validity():
    record = {"id": "A1", "id_card_no": " 11010519850307006x ", "name": "张伟"}
    protected = protect_record(record, {"id_card_no": "resident_id"}, "test-salt")
    assert protected == {
        "id": "A1",
        "name": "张伟",
        "id_card_no_sha256": hashlib.sha256(f"test-salt{ZHANG_WEI}".encode()).hexdigest(),
        "id_card_no_valid": True,
    }
    assert record["id_card_no"] == " 11010519850307006x "  # the input is left alone
    # the same person typed differently hashes the same; another salt does not
    again = protect_record(
        {"id_card_no": "１１０１０５１９８５０３０７００６Ｘ"}, {"id_card_no": "resident_id"}, "test-salt"
    )
    assert again["id_card_no_sha256"] == protected["id_card_no_sha256"]
    other = protect_record(record, {"id_card_no": "resident_id"}, "other")
    assert other["id_card_no_sha256"] != protected["id_card_no_sha256"]
    assert protect_record({"id": "A2", "id_card_no": ""}, {"id_card_no": "resident_id"}, "test-salt") == {
        "id": "A2"
    }


def test_protecting_without_a_salt_is_a_clear_error():
    with pytest.raises(ValueError, match="C360_PII_SALT"):
        protect_record({"id_card_no": ZHANG_WEI}, {"id_card_no": "resident_id"}, "")


def test_landed_rows_and_quarantine_never_hold_the_number(fresh_db):
    with psycopg.connect(fresh_db.url) as conn:
        ensure_raw_table(conn, "raw_crm", "accounts")
        result = LandingResult("crm", "accounts", "b1")
        land_records(
            conn,
            source="crm",
            entity="accounts",
            key="id",
            updated_at="updated_at",
            records=[
                {"id": "A1", "id_card_no": ZHANG_WEI, "updated_at": "2026-01-01T00:00:00Z"},
                {"id": "A2", "id_card_no": ZHANG_WEI, "updated_at": "not a date"},  # quarantined
            ],
            batch_id="b1",
            result=result,
            protected={"id_card_no": "resident_id"},
            pii_salt="test-salt",
        )
        conn.commit()
        stored = conn.execute("select payload::text from raw_crm.accounts").fetchall()
        quarantined = conn.execute("select raw_record from ops.quarantine").fetchall()
    assert (result.inserted, result.quarantined) == (1, 1)
    assert all(ZHANG_WEI not in text and "id_card_no_sha256" in text for (text,) in stored + quarantined)
    # the source did send id_card_no: no schema drift is reported for it
    assert result.drift(["id", "id_card_no", "updated_at"]) == ([], [])


def test_rows_landed_in_the_clear_are_hashed_in_place_once(fresh_db):
    """An upgrade: rows landed before the field was protected get hashed, and a new extract of the
    same record then recognises it (same content hash) instead of landing it again."""
    from include.identity.pii import protect_landed

    record = {"id": "A1", "id_card_no": ZHANG_WEI, "updated_at": "2026-01-01T00:00:00Z"}
    with psycopg.connect(fresh_db.url) as conn:
        ensure_raw_table(conn, "raw_crm", "accounts")
        land_records(conn, source="crm", entity="accounts", key="id", updated_at="updated_at",
                     records=[record], batch_id="old")  # fmt: skip
        assert protect_landed(conn, "raw_crm", "accounts", {"id_card_no": "resident_id"}, "test-salt") == 1
        assert protect_landed(conn, "raw_crm", "accounts", {"id_card_no": "resident_id"}, "test-salt") == 0
        conn.commit()
        (text,) = conn.execute("select payload::text from raw_crm.accounts").fetchone()
        assert ZHANG_WEI not in text and "id_card_no_sha256" in text
        again = land_records(conn, source="crm", entity="accounts", key="id", updated_at="updated_at",
                             records=[record], batch_id="new", protected={"id_card_no": "resident_id"},
                             pii_salt="test-salt")  # fmt: skip
        conn.commit()
    assert (again.inserted, again.duplicates) == (0, 1)
