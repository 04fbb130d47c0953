"""Identifiers of the circle (DESIGN.md section 2): USCC, resident ID numbers, person subject ids."""

from __future__ import annotations

import functools
import hashlib
import re
import uuid

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {ch: i for i, ch in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"

PERSON_ID_RE = re.compile(r"^P[0-9a-f]{64}\Z")


def uscc_check_char(first17: str) -> str:
    """The 18th character of a USCC for its first 17 (GB 32100-2015)."""
    total = sum(_USCC_VALUE[ch] * w for ch, w in zip(first17, _USCC_WEIGHTS, strict=True))
    value = 31 - total % 31
    return USCC_ALPHABET[0 if value == 31 else value]


@functools.lru_cache(maxsize=1 << 16)  # a subject's records repeat its code; checked once per code
def is_valid_uscc(code: str) -> bool:
    if len(code) != 18 or any(ch not in _USCC_VALUE for ch in code):
        return False
    return uscc_check_char(code[:17]) == code[17]


def id_number_check_char(first17: str) -> str:
    total = sum(int(ch) * w for ch, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_number(number: str) -> bool:
    """An 18-character resident ID number (GB 11643) with a correct check character."""
    number = number.upper()
    if len(number) != 18 or not (number[:17].isascii() and number[:17].isdigit()):
        return False
    return id_number_check_char(number[:17]) == number[17]


def person_subject_id(id_number: str, salt: str) -> str:
    """`P` + hex SHA-256 of (salt + ID number); the clear number never leaves the caller."""
    if not is_valid_id_number(id_number):
        raise ValueError("not a valid 18-character ID number (check character mismatch)")
    digest = hashlib.sha256((salt + id_number.upper()).encode("utf-8")).hexdigest()
    return "P" + digest


def is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True
