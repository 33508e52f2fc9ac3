"""Personal identifiers that never enter the warehouse in the clear.

A resident ID number (居民身份证号码) identifies a person for life: under PIPL the warehouse keeps
only what matching needs. Extraction replaces the field, before anything is written, with
``<field>_sha256`` (SHA-256 of the salt and the standardised number) and ``<field>_valid`` (the
GB 11643-1999 checksum and birth date), so raw tables, staging, marts and snapshots never hold the
number; equal numbers still give equal hashes. The registry lists the fields per entity
(``protected``); the salt comes from ``C360_PII_SALT`` (``config.pii_salt``).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date
from typing import Any, Literal

ProtectionKind = Literal["resident_id"]

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_SHAPE = re.compile(r"^[1-9]\d{5}(\d{4})(\d{2})(\d{2})\d{3}[\dX]$")
_SEPARATORS = re.compile(r"[\s\-]")


def normalize_resident_id(value: Any) -> str | None:
    """Half-width, upper-case (x -> X), no spaces or dashes; empty -> None."""
    if value in (None, ""):
        return None
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", str(value))).upper()
    return text or None


def resident_id_is_valid(number: str | None) -> bool:
    """GB 11643-1999: 17 digits (area, birth date, sequence) and the check character
    ``'10X98765432'[sum(d_i * w_i) mod 11]``; the birth date must be a real 19xx/20xx date."""
    if not number:
        return False
    match = _ID_SHAPE.match(number)
    if not match:
        return False
    year, month, day = (int(g) for g in match.groups())
    if not 1900 <= year <= 2099:
        return False
    try:
        date(year, month, day)
    except ValueError:
        return False
    check = "10X98765432"[sum(int(d) * w for d, w in zip(number[:17], _ID_WEIGHTS, strict=True)) % 11]
    return number[17] == check


def salted_sha256(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}{value}".encode()).hexdigest()


def protect_record(record: dict[str, Any], protected: dict[str, ProtectionKind], salt: str) -> dict[str, Any]:
    """The record with every protected field replaced by ``<field>_sha256`` and ``<field>_valid``
    (both absent when the field is empty). The input is not changed."""
    if not any(name in record for name in protected):
        return record
    if not salt:
        raise ValueError(
            "C360_PII_SALT is not set: resident ID numbers cannot be landed without a salt to hash them "
            "with (set it once per installation and keep it: changing it changes every hash)"
        )
    out = dict(record)
    for name, kind in protected.items():
        if kind != "resident_id":  # the registry validates kinds; this guards direct callers
            raise ValueError(f"unknown protection {kind!r} for field {name!r}")
        if name not in out:
            continue
        number = normalize_resident_id(out.pop(name))
        if number is not None:
            out[f"{name}_sha256"] = salted_sha256(salt, number)
            out[f"{name}_valid"] = resident_id_is_valid(number)
    return out


def protect_landed(
    conn: Any, schema: str, table: str, protected: dict[str, ProtectionKind], salt: str, batch: int = 5_000
) -> int:
    """Hash protected fields still in the clear in rows landed before they were protected (an
    upgrade, or a field newly listed as protected): payload and content hash rewritten in place,
    in the caller's transaction. Returns the rows rewritten; a second call finds none."""
    from psycopg import sql

    from include.extract.landing import canonical_json_bytes

    target = sql.Identifier(schema, table)
    clear = sql.SQL(" or ").join(sql.SQL("payload ? {}").format(sql.Literal(name)) for name in protected)
    rewritten = 0
    with conn.cursor() as cur:
        while True:
            cur.execute(
                sql.SQL("select _seq, payload from {} where {} limit %s").format(target, clear), (batch,)
            )
            rows = cur.fetchall()
            if not rows:
                return rewritten
            updates = []
            for seq, payload in rows:
                safe = canonical_json_bytes(protect_record(payload, protected, salt))
                updates.append((safe.decode(), hashlib.md5(safe).hexdigest(), seq))
            update = sql.SQL("update {} set payload = %s::jsonb, _content_hash = %s where _seq = %s")
            cur.executemany(update.format(target), updates)
            rewritten += len(updates)
