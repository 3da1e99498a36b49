"""Chinese identity numbers: GB 11643-1999 18-digit 身份证号 with check character, legacy 15-digit form."""

from __future__ import annotations

import operator
from datetime import date

WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"


def check_char(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    if len(first17) != 17:
        raise ValueError(f"a 身份证号 body has 17 digits: {first17!r}")
    return CHECK_CHARS[sum(map(operator.mul, map(int, first17), WEIGHTS)) % 11]


def make_id(area: str, birth: date, seq: int) -> str:
    """An 18-digit 身份证号; `seq` odd for men, even for women (GB 11643)."""
    body = f"{area}{birth.year:04d}{birth.month:02d}{birth.day:02d}{seq:03d}"
    return body + check_char(body)


def is_valid(id_no: str) -> bool:
    return len(id_no) == 18 and id_no[:17].isdigit() and check_char(id_no[:17]) == id_no[17].upper()


def to_legacy15(id18: str) -> str:
    """The pre-1999 15-digit form: area(6) + YYMMDD + sequence(3), no check character."""
    return id18[:6] + id18[8:14] + id18[14:17]


def wrong_check(id18: str) -> str:
    """The same number with a deliberately wrong check character (labelled defect)."""
    good = id18[17]
    return id18[:17] + next(c for c in CHECK_CHARS if c != good)
