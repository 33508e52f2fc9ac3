"""Valid Chinese phone numbers, and the shapes people actually type them in.

phonenumbers decides validity and gives the canonical formats (E.164, national, international);
the variants on top are the ways staff and customers write numbers into forms.
"""

from __future__ import annotations

import random
from functools import lru_cache

import phonenumbers
from faker.providers.phone_number.zh_CN import Provider as _FakerPhones
from phonenumbers import PhoneNumberFormat

MOBILE_PREFIXES: tuple[int, ...] = tuple(_FakerPhones.phonenumber_prefixes)
_FULL_WIDTH = str.maketrans("0123456789+-() ", "０１２３４５６７８９＋－（）\u3000")


@lru_cache(maxsize=65536)
def _parse(e164: str) -> phonenumbers.PhoneNumber:
    # Cached: a customer's number is validated once and then written out in several styles.
    return phonenumbers.parse(e164, None)


def make_mobile(rng: random.Random) -> str:
    """A valid mainland mobile number in E.164 (``+8613812345678``)."""
    while True:
        candidate = f"+86{rng.choice(MOBILE_PREFIXES)}{rng.randrange(10**8):08d}"
        if phonenumbers.is_valid_number(_parse(candidate)):
            return candidate


def make_landline(rng: random.Random, area_code: str) -> str:
    """A valid fixed-line number in E.164 for an area code such as ``010`` or ``0755``."""
    for attempt in range(50):
        # Most cities have 8-digit local numbers, a few (Xiamen ...) still have 7.
        length = 7 if attempt % 2 else 8
        local = f"{rng.randrange(2, 9)}{rng.randrange(10 ** (length - 1)):0{length - 1}d}"
        candidate = f"+86{area_code[1:]}{local}"
        if phonenumbers.is_valid_number(_parse(candidate)):
            return candidate
    raise ValueError(f"could not make a valid landline number for area code {area_code}")


def is_e164_cn(value: str) -> bool:
    """True for a valid Chinese number written exactly in E.164."""
    if not value.startswith("+86"):
        return False
    try:
        number = _parse(value)
    except phonenumbers.NumberParseException:
        return False
    return (
        phonenumbers.is_valid_number(number)
        and phonenumbers.format_number(number, PhoneNumberFormat.E164) == value
    )


MOBILE_STYLES = (
    "e164",  # +8613812345678
    "national",  # 138 1234 5678
    "international",  # +86 138 1234 5678
    "digits",  # 13812345678
    "dashes",  # 138-1234-5678
    "plus86_space",  # +86 13812345678
    "0086",  # 0086 13812345678
    "86_dash",  # 86-13812345678
    "full_width",  # １３８１２３４５６７８
    "padded",  # " 138 1234 5678 "
)


def format_mobile(e164: str, style: str) -> str:
    """One E.164 mobile number written in one of :data:`MOBILE_STYLES`."""
    digits = e164.removeprefix("+86")
    if style == "e164":
        return e164
    number = _parse(e164)
    if style == "national":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "dashes":
        return phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL).replace(" ", "-")
    if style == "digits":
        return digits
    if style == "plus86_space":
        return f"+86 {digits}"
    if style == "0086":
        return f"0086 {digits}"
    if style == "86_dash":
        return f"86-{digits}"
    if style == "full_width":
        return digits.translate(_FULL_WIDTH)
    if style == "padded":
        return f" {phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)} "
    return digits


LANDLINE_STYLES = ("national", "dash", "paren", "international", "extension", "digits")


def format_landline(e164: str, style: str, rng: random.Random | None = None) -> str:
    """One E.164 fixed-line number as typed: ``010-12345678``, ``(021)1234 5678``, ..."""
    number = _parse(e164)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)  # "010 1234 5678"
    area, _, local = national.partition(" ")
    if style == "national":
        return national
    if style == "dash":
        return f"{area}-{local.replace(' ', '')}"
    if style == "paren":
        return f"({area}){local}"
    if style == "international":
        return phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    if style == "extension":
        ext = (rng or random.Random(e164)).randrange(800, 8999)
        return f"{area}-{local.replace(' ', '')}-{ext}"
    return area + local.replace(" ", "")
