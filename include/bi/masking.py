"""Masking of contact details on dashboards, the same shapes as the ``bi`` schema's views.

The dashboards read the ``bi`` views, which already mask phones and emails; they mask again
anyway (a value that is already masked stays as it is), so a page built from ``marts`` during
development or by a user with wider grants shows no more than the BI layer would.
"""

from __future__ import annotations

import re

_NON_DIGITS = re.compile(r"\D")


def mask_phone(value: str | None) -> str | None:
    """``+8613812345678`` -> ``138****5678``; ``+861087654321`` -> ``010****4321``.

    The national number (a landline with its trunk 0) keeps its first three and last four digits;
    a short number keeps only its last two. Already masked values are returned unchanged.
    """
    if value is None or not value.strip():
        return None
    if "*" in value:
        return value
    digits = _NON_DIGITS.sub("", value)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif value.strip().startswith("+86") or (digits.startswith("86") and len(digits) >= 12):
        digits = digits[2:]
    is_mobile = len(digits) == 11 and digits.startswith("1")
    if len(digits) >= 8 and not is_mobile and not digits.startswith("0"):
        digits = "0" + digits  # a landline in E.164 drops its trunk 0
    if len(digits) >= 8:
        return f"{digits[:3]}****{digits[-4:]}"
    return "*" * max(len(digits) - 2, 1) + digits[-2:]


def mask_email(value: str | None) -> str | None:
    """``zhang.wei@example.com`` -> ``z***@example.com``; already masked values stay as they are."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if "***@" in value:
        return value
    local, at, domain = value.partition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
