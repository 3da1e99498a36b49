"""Normalization of patient identity fields for matching (names, 身份证号, dates, sex, phones, addresses, documents).

Pure functions, no warehouse access. Standards: GB 11643-1999 (身份证号), GB/T 2261.1-2003 (性别),
WS 364 CV02.01.101 (身份证件类别), GB/T 2260 + statistical township codes (addresses).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).with_name("data")
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
_SPACES = re.compile(r"[\s\u3000·•・.]+")
_NON_DIGIT = re.compile(r"\D")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


# -- names -------------------------------------------------------------------------------------
def normalize_name(value: str | None) -> str | None:
    """NFKC (full-width → half-width), spaces and middle dots removed, DICOM `^` separators joined, upper-cased."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).replace("^", "")
    text = _SPACES.sub("", text).upper()
    return text or None


@cache
def _pinyin() -> Any:
    try:
        from pypinyin import Style, lazy_pinyin
    except ImportError:  # pragma: no cover - pypinyin is a dependency; keep working without it
        return None
    return lambda s: lazy_pinyin(s, style=Style.NORMAL, errors="default")


_CHAR_PINYIN: dict[str, str] = {}


def _char_pinyin(ch: str) -> str:
    """Toneless pinyin of one character (its most common reading), cached: names reuse few thousand characters."""
    value = _CHAR_PINYIN.get(ch)
    if value is None:
        convert = _pinyin()
        value = (convert(ch)[0] if convert else ch).lower()
        _CHAR_PINYIN[ch] = value
    return value


def name_pinyin(name: str | None) -> str | None:
    """Toneless pinyin syllables joined by spaces (同音字 share it): 张伟 → "zhang wei"."""
    if not name:
        return None
    return " ".join(_char_pinyin(ch) for ch in name)


def name_key(name: str | None) -> str | None:
    """Homophone-tolerant blocking key: pinyin without separators, sh/zh/ch → s/z/c and final ng → n folded."""
    py = name_pinyin(name)
    if not py:
        return None
    key = py.replace(" ", "")
    for a, b in (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ng", "n")):
        key = key.replace(a, b)
    return key


def surname(name: str | None) -> str | None:
    """The family name (compound surnames from the shipped list, else the first character)."""
    if not name:
        return None
    for compound in compound_surnames():
        if name.startswith(compound):
            return compound
    return name[0]


@cache
def compound_surnames() -> tuple[str, ...]:
    return (
        "欧阳",
        "司马",
        "上官",
        "诸葛",
        "东方",
        "皇甫",
        "尉迟",
        "公孙",
        "慕容",
        "令狐",
        "长孙",
        "宇文",
        "司徒",
        "夏侯",
    )


def char_diff(a: str | None, b: str | None) -> int | None:
    """Levenshtein distance between two short names (形近字/同音字 typos are one substitution)."""
    if a is None or b is None:
        return None
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


# -- 身份证号 (GB 11643-1999) --------------------------------------------------------------------
def id_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True)) % 11]


def clean_id(value: str | None) -> str | None:
    """Full-width → half-width, spaces removed, check `x` upper-cased."""
    if value is None:
        return None
    text = _SPACES.sub("", unicodedata.normalize("NFKC", str(value))).upper()
    return text or None


def _valid_date(yyyymmdd: str) -> date | None:
    if len(yyyymmdd) != 8 or not yyyymmdd.isdigit():
        return None
    try:
        return date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:]))
    except ValueError:
        return None


def is_valid_id(id_no: str | None) -> bool:
    """18 characters, 17 digits, a real birth date, the right check character."""
    if not id_no or len(id_no) != 18 or not id_no[:17].isdigit():
        return False
    return _valid_date(id_no[6:14]) is not None and id_check_char(id_no[:17]) == id_no[17]


def upgrade_id15(id_no: str) -> str | None:
    """A legacy 15-digit number → its 18-digit form (insert 19, compute the check); None if not 15 digits."""
    if len(id_no) != 15 or not id_no.isdigit():
        return None
    body = id_no[:6] + "19" + id_no[6:]
    return body + id_check_char(body)


def normalize_id(value: str | None) -> tuple[str | None, bool, bool]:
    """(normalized number, valid, upgraded_from_15). Invalid numbers are returned cleaned, flagged invalid."""
    text = clean_id(value)
    if text is None:
        return None, False, False
    if len(text) == 15 and (up := upgrade_id15(text)) is not None:
        return up, is_valid_id(up), True
    return text, is_valid_id(text), False


def id_birth_date(id_no: str | None) -> date | None:
    if not id_no or len(id_no) != 18 or not id_no[:17].isdigit():
        return None
    return _valid_date(id_no[6:14])


def id_sex(id_no: str | None) -> str | None:
    """GB/T 2261.1 sex from the sequence digit (odd 1 男, even 2 女)."""
    if not id_no or len(id_no) != 18 or not id_no[16].isdigit():
        return None
    return "1" if int(id_no[16]) % 2 else "2"


# -- demographics --------------------------------------------------------------------------------
_SEX = {"1": "1", "男": "1", "男性": "1", "M": "1", "MALE": "1", "2": "2", "女": "2", "女性": "2", "F": "2",
        "FEMALE": "2", "0": "0", "未知": "0", "U": "0", "9": "9", "不详": "9", "X": "9", "O": "9"}  # fmt: skip


def normalize_sex(value: str | None) -> str | None:
    """GB/T 2261.1-2003 code: 1 男, 2 女; unknown spellings → None (0/9 kept as 'unknown', not compared)."""
    if value is None:
        return None
    code = _SEX.get(unicodedata.normalize("NFKC", str(value)).strip().upper())
    return code if code in ("1", "2") else None


def normalize_date(value: Any) -> date | None:
    """YYYYMMDD, YYYY-MM-DD, YYYY/MM/DD or a date/datetime → date; anything else → None."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    digits = _NON_DIGIT.sub("", unicodedata.normalize("NFKC", str(value)))[:8]
    return _valid_date(digits) if len(digits) == 8 else None


def normalize_phone(value: str | None) -> str | None:
    """Digits only, +86/0086 prefix dropped; mobile numbers (11 digits from 1[3-9]) and fixed lines kept."""
    if value is None:
        return None
    digits = _NON_DIGIT.sub("", unicodedata.normalize("NFKC", str(value)))
    for prefix in ("0086", "86"):
        if len(digits) == len(prefix) + 11 and digits.startswith(prefix):
            digits = digits[len(prefix) :]
    if _MOBILE.match(digits) or 7 <= len(digits) <= 12:
        return digits
    return None


def normalize_address(value: str | None) -> str | None:
    if value is None:
        return None
    text = _SPACES.sub("", unicodedata.normalize("NFKC", str(value)))
    return text or None


def township_code(address: str | None, townships: list[dict[str, str]]) -> str | None:
    """The 9-digit statistical township code whose name appears in the address (longest name wins)."""
    if not address:
        return None
    best: tuple[int, str] | None = None
    for t in townships:
        name = str(t["name"])
        if name in address and (best is None or len(name) > best[0]):
            best = (len(name), str(t["code"]))
    return best[1] if best else None


def address_detail(address: str | None, township_name: str | None = None) -> str | None:
    """The part after the township (village + house number), for comparing within a township."""
    if not address:
        return None
    if township_name and township_name in address:
        return address.split(township_name, 1)[1] or None
    return address[-12:]


# -- documents, cards --------------------------------------------------------------------------
@cache
def id_type_table() -> dict[str, Any]:
    return yaml.safe_load((DATA / "id_types.yaml").read_text(encoding="utf-8"))


def normalize_id_type(value: str | None) -> str | None:
    """WS 364 CV02.01.101 code of a source's document type (None when absent or unknown)."""
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", str(value)).strip()
    table = id_type_table()
    if text.zfill(2) in table["codes"] and len(text) == 2:
        return text
    return table["local"].get(text) or table["local"].get(text.upper())


def resident_id(id_type: str | None, id_no: str | None) -> tuple[str | None, bool, bool]:
    """(18-digit 身份证号, valid, upgraded) when the document carries one: 居民身份证, or a 户口簿 whose number
    is the holder's 身份证号 (as it is in China); else (None, False, False). Absent type → treated as 身份证."""
    if id_type not in (None, "01", "02"):
        return None, False, False
    number, valid, upgraded = normalize_id(id_no)
    if number is None or (id_type == "02" and not valid):
        return None, False, False
    return number, valid, upgraded


def normalize_card_no(value: str | None) -> str | None:
    """Health card (居民健康卡) / medical-insurance numbers: NFKC, spaces and dashes removed, upper-cased."""
    if value is None:
        return None
    text = re.sub(r"[\s\-_]", "", unicodedata.normalize("NFKC", str(value))).upper()
    return text or None
