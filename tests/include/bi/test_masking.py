"""Masking of phones and emails on the dashboards: the bi views' shapes, idempotent."""

from __future__ import annotations

import pytest

from include.bi.masking import mask_email, mask_phone


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("+8613812345678", "138****5678"),  # mobile in E.164, as the marts hold it
        ("13812345678", "138****5678"),
        ("0086 138-1234-5678", "138****5678"),
        ("+861087654321", "010****4321"),  # Beijing landline: E.164 drops the trunk 0
        ("+8675512345678", "075****5678"),
        ("138****5678", "138****5678"),  # already masked by the bi view
        ("12345", "***45"),
        ("", None),
        (None, None),
    ],
)
def test_mask_phone(value, expected):
    assert mask_phone(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("zhang.wei@example.com", "z***@example.com"),
        ("  li@corp.cn ", "l***@corp.cn"),
        ("z***@example.com", "z***@example.com"),
        ("not-an-email", "***"),
        (None, None),
    ],
)
def test_mask_email(value, expected):
    assert mask_email(value) == expected
