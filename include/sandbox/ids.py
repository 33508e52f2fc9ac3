"""Chinese identifiers with their official checksums.

- Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters; the 9-character
  organisation code inside it carries its own GB 11714 check character.
- Resident identity card number (居民身份证号码), GB 11643-1999: 17 digits plus an ISO 7064 MOD 11-2
  check character.
"""

from __future__ import annotations

import random
from datetime import date

USCC_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_CHARSET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]
_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]
_ID_CHECK = "10X98765432"


def uscc_check_char(body: str) -> str:
    """The 18th character for the first 17 characters of a unified social credit code."""
    total = sum(_USCC_VALUE[c] * w for c, w in zip(body, _USCC_WEIGHTS, strict=True))
    return USCC_CHARSET[(31 - total % 31) % 31]


def org_code_check_char(body: str) -> str:
    """GB 11714 check character for an 8-character organisation code body."""
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    check = 11 - total % 11
    return "X" if check == 10 else "0" if check == 11 else str(check)


def is_valid_uscc(code: str | None) -> bool:
    if not code or len(code) != 18 or any(c not in _USCC_VALUE for c in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


def make_uscc(rng: random.Random, division_code: str, valid: bool = True) -> str:
    """A unified social credit code for an enterprise registered in ``division_code``.

    ``valid=False`` gives a code whose last character is wrong, as when someone mistypes it.
    """
    org_body = f"{rng.randrange(10**7, 10**8)}"
    org_code = org_body + org_code_check_char(org_body)
    # '9' = registered by the market regulator, then '1' company / '2' individual business.
    body = "9" + ("1" if rng.random() < 0.93 else "2") + division_code + org_code
    check = uscc_check_char(body)
    if not valid:
        check = rng.choice([c for c in USCC_CHARSET if c != check])
    return body + check


def id_card_check_char(body: str) -> str:
    total = sum(int(c) * w for c, w in zip(body, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_card(number: str | None) -> bool:
    if not number or len(number) != 18 or not number[:17].isdigit():
        return False
    try:
        date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return id_card_check_char(number[:17]) == number[17]


def make_id_card(rng: random.Random, area_code: str, birth: date, female: bool) -> str:
    """A GB 11643 resident ID number; the sequence's last digit is odd for men, even for women."""
    seq = rng.randrange(0, 100) * 10 + rng.randrange(0, 10, 2) + (0 if female else 1)
    body = f"{area_code}{birth:%Y%m%d}{seq:03d}"
    return body + id_card_check_char(body)
