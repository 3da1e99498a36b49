"""Normalization units: names, 身份证号 (GB 11643), dates, sex, phones, addresses, document types, cards."""

from __future__ import annotations

from datetime import date

import pytest

from mpi import normalize as nz
from synthetic.identity import make_id, to_legacy15


def test_names_width_spaces_and_dicom_separator():
    assert nz.normalize_name(" 张　伟 ") == "张伟"
    assert nz.normalize_name("ＬＩ Ｍｉｎｇ") == "LIMING"
    assert nz.normalize_name("李^达") == "李达"
    assert nz.normalize_name("欧阳·娜娜") == "欧阳娜娜"
    assert nz.normalize_name("  ") is None


def test_pinyin_keys_join_homophones_but_not_different_names():
    assert nz.name_pinyin("张伟") == "zhang wei"
    assert nz.name_key("张伟") == nz.name_key("章炜")  # 同音字
    assert nz.name_key("刘伟") == nz.name_key("刘玮")
    assert nz.name_key("张伟") != nz.name_key("张丽")
    assert nz.name_key("陈诗") == nz.name_key("陈丝")  # sh/s folded (southern pronunciation)


def test_surname_and_one_character_typos():
    assert nz.surname("欧阳娜娜") == "欧阳"
    assert nz.surname("王新") == "王"
    assert nz.char_diff("王新宇", "王亲宇") == 1  # 形近字
    assert nz.char_diff("王新", "王新宇") == 1
    assert nz.char_diff("王新", "李四") == 2


def test_id_validation_upgrade_and_derived_fields():
    id18 = make_id("410182", date(1970, 6, 26), 221)
    assert nz.is_valid_id(id18)
    assert not nz.is_valid_id(id18[:17] + ("0" if id18[17] != "0" else "1"))
    assert not nz.is_valid_id("410182197013261234")  # month 13
    assert nz.normalize_id(to_legacy15(id18)) == (id18, True, True)
    assert nz.normalize_id(" " + id18[:17] + id18[17].lower()) == (id18, True, False)
    assert nz.id_birth_date(id18) == date(1970, 6, 26)
    assert nz.id_sex(id18) == "1"
    assert nz.id_sex(make_id("410182", date(1990, 1, 2), 222)) == "2"
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in id18)
    assert nz.normalize_id(full_width)[0] == id18


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("男", "1"),
        ("M", "1"),
        ("1", "1"),
        ("女", "2"),
        ("F", "2"),
        ("2", "2"),
        ("不详", None),
        ("X", None),
        (None, None),
    ],
)
def test_sex_to_gbt_2261(value, code):
    assert nz.normalize_sex(value) == code


def test_dates_phones_addresses():
    assert nz.normalize_date("20010131") == date(2001, 1, 31)
    assert nz.normalize_date("2001-01-31") == date(2001, 1, 31)
    assert nz.normalize_date("2001/13/01") is None
    assert nz.normalize_phone("+86 139-1234-5678") == "13912345678"
    assert nz.normalize_phone("１３９１２３４５６７８") == "13912345678"
    assert nz.normalize_phone("12") is None
    towns = [{"code": "410182001", "name": "索河街道"}, {"code": "410182202", "name": "金寨回族乡"}]
    address = "河南省郑州市荥阳市金寨回族乡17村18号"
    assert nz.township_code(address, towns) == "410182202"
    assert nz.township_code("北京市海淀区", towns) is None
    assert nz.address_detail(address, "金寨回族乡") == "17村18号"


def test_ws364_document_types_and_resident_id():
    assert set(nz.id_type_table()["codes"]) == {"01", "02", "03", "04", "05", "06", "07", "99"}
    assert nz.normalize_id_type("1") == "01" and nz.normalize_id_type("ID") == "01"
    assert nz.normalize_id_type("HK") == "02" and nz.normalize_id_type("PP") == "03"
    assert nz.normalize_id_type("07") == "07" and nz.normalize_id_type("??") is None
    id18 = make_id("410182", date(1980, 2, 3), 15)
    assert nz.resident_id("02", id18) == (id18, True, False)  # 户口簿 number is the 身份证号
    assert nz.resident_id("03", "E12345678") == (None, False, False)  # a passport is not a 身份证号
    assert nz.resident_id(None, id18)[1]


def test_card_numbers():
    assert nz.normalize_card_no(" ４１０１-8220 ") == "41018220"
    assert nz.normalize_card_no("") is None
