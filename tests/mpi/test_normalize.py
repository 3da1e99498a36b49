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


def test_columnar_normalization_agrees_with_the_scalar_rules():
    """mpi.identities normalizes whole columns at once; it must give what the scalar rules in normalize.py give."""
    from datetime import datetime

    import polars as pl

    from mpi.identities import normalize_identities

    good = make_id("410182", date(1970, 6, 26), 221)
    girl = make_id("410182", date(2011, 3, 9), 18)
    ids = [good, to_legacy15(good), good[:17] + ("1" if good[17] != "1" else "2"), good.lower(), " " + girl + " ",
           "".join(chr(ord(c) + 0xFEE0) for c in girl), "E12345678", "4101821970", None, "", girl]  # fmt: skip
    types = ["1", None, "ID", None, "HK", "01", "PP", "1", None, None, "3"]
    names = ["张伟", " 李^达 ", "ＬＩ Ｍｉｎｇ", "欧阳娜娜", None, "王新宇", "陈诗", "刘玮", "", "章炜", "赵"]
    phones = ["+86 139-1234-5678", "１３９１２３４５６７８", "12", None, "0086-13912345678", "0371-6666888",
              "13912345678", "abc", "", "19912345678", "8613912345678"]  # fmt: skip
    births = ["20010131", "2001-01-31", "2001/13/01", None, "1970-06-26", "", "19700626", "x", "20110309",
              "2011-3-9", "20000229"]  # fmt: skip
    sexes = ["男", "F", "不详", None, "1", "2", "X", "M", "女", "", "9"]
    addresses = ["河南省郑州市荥阳市金寨回族乡17村18号", "河南省郑州市荥阳市索河街道 6村178号", None,
                 "北京市海淀区", "", "荥阳市乔楼镇3村1号", "x", None, "河南省郑州市荥阳市索河街道6村", "乔楼镇",
                 "豫龙镇9村"]  # fmt: skip
    towns = [{"code": "410182001", "name": "索河街道"}, {"code": "410182202", "name": "金寨回族乡"},
             {"code": "410182100", "name": "乔楼镇"}]  # fmt: skip
    n = len(ids)
    raw = pl.DataFrame(
        {
            "org_code": ["O"] * n,
            "source_system": ["S"] * n,
            "local_id": [str(i) for i in range(n)],
            "name": names,
            "sex": sexes,
            "birth_date": births,
            "id_type": types,
            "id_no": ids,
            "phone": phones,
            "address": addresses,
            "updated_at": [datetime(2026, 1, 1)] * n,
            "origin": ["o"] * n,
            "source_table": ["his_patient"] * n,
            "raw_hash": ["h"] * n,
        },
    )
    out = normalize_identities(raw, towns).to_dicts()
    for row, name, sex, birth, id_type, id_no, phone, address in zip(
        out, names, sexes, births, types, ids, phones, addresses, strict=True
    ):
        doc = nz.normalize_id_type(id_type)
        id18, valid, upgraded = nz.resident_id(doc, id_no)
        nm = nz.normalize_name(name)
        addr = nz.normalize_address(address)
        town = nz.township_code(addr, towns)
        shaped = bool(id18 and len(id18) == 18 and id18[:17].isdigit())
        expected = {
            "name": nm, "name_pinyin": nz.name_pinyin(nm), "name_key": nz.name_key(nm), "surname": nz.surname(nm),
            "sex_code": nz.normalize_sex(sex), "birth_date": nz.normalize_date(birth),
            "id_type": doc or ("01" if id18 else None), "id_no": id18 if id18 else nz.clean_id(id_no),
            "id_valid": valid, "id_upgraded": upgraded, "id17": id18[:17] if shaped else None,
            "id_birth_date": nz.id_birth_date(id18), "id_sex_code": nz.id_sex(id18) if id18 else None,
            "phone": nz.normalize_phone(phone), "address": addr, "township_code": town,
            "address_detail": nz.address_detail(addr, {t["code"]: t["name"] for t in towns}.get(town or "")),
        }  # fmt: skip
        got = {k: row[k] for k in expected}
        assert got == expected, (id_no, name)
