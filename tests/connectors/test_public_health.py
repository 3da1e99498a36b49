"""Public-health connector: CSV/Excel exports land per data set under the contract; bad rows and files are refused."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
from openpyxl import Workbook

import synthetic
from connectors.ledger import SourceError
from connectors.public_health import CONTRACT, PublicHealthFiles, load_contract, make_kind
from connectors.registry import ingest
from hutong.config import SourceConfig
from tests.conftest import write_config
from warehouse import Warehouse, ensure_core

SHORTS = ("GWWSY", "CMWSY", "SSWSY")  # 乡镇卫生院 with both CSV encodings, late files and a malformed row at seed 7
TABLES = {"health_record": "ph_health_record", "hypertension_followup": "ph_hypertension_followup",
          "diabetes_followup": "ph_diabetes_followup", "vaccination": "ph_vaccination",
          "elderly_checkup": "ph_elderly_checkup"}  # fmt: skip
FOLLOWUP_HEADER = (
    "随访编号,档案编号,身份证号,姓名,随访日期,随访方式,收缩压(mmHg),舒张压(mmHg),用药情况,下次随访日期,随访医生"
)


def _reader() -> PublicHealthFiles:
    return PublicHealthFiles(load_contract(str(CONTRACT)))


def _followup(n: int, name: str = "张三", day: str = "2026-10-05") -> str:
    return f"GY{n},41018210000000{n:03d},410182196104101660,{name},{day},门诊,130,80,规律,2027-01-01,Y001"


def _truth(config) -> tuple[Counter, dict[tuple[str, str], set[str]]]:
    """Records per (org, data set) and the files holding them."""
    counts: Counter = Counter()
    files: dict[tuple[str, str], set[str]] = {}
    with (config.data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["source_system"] == "PH":
                counts[(r["org_code"], r["entity"])] += 1
                files.setdefault((r["org_code"], r["entity"]), set()).add(r["source_table"])
    return counts, files


def _defects(config) -> list[dict[str, str]]:
    with (config.data_dir / "truth" / "defects.csv").open(encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if r["source_kind"] == "public_health"]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_bad_lines_are_quarantined_with_line_number_and_bytes(encoding):
    bom = encoding == "utf-8-sig"
    encoding = "utf-8" if bom else encoding
    lines = [
        FOLLOWUP_HEADER.encode(encoding),
        _followup(1, "张三").encode(encoding),  # line 2
        _followup(2).rpartition(",")[0].encode(encoding) + b"Y001",  # 3: a field lost its separator
        _followup(3).rsplit(",", 3)[0].encode(encoding) + ',"未闭合引号'.encode(encoding),  # 4: unclosed quote
        _followup(4)[:10].encode(encoding) + b"\xff\xfe\x80" + _followup(4)[10:].encode(encoding),  # 5: bad bytes
        _followup(5, '"欧阳\r\n小明"').encode(encoding),  # 6-7: a quoted name over two lines
        _followup(6).replace("GY6", " ").encode(encoding),  # 8: no record id
        _followup(7).replace("规律", '"规律,间断"').encode(encoding),  # 9: a quoted separator
        b"",
        _followup(8, "李四").encode(encoding),  # 11 (after a blank line)
        b"",
    ]
    data = b"\xef\xbb\xbf" * bom + b"\r\n".join(lines)
    parsed = _reader().parse(Path("x"), "高血压随访_20261011.csv", data, "ORG")
    assert parsed.rejected is None and parsed.primary == "ph_hypertension_followup"
    rows = parsed.tables["ph_hypertension_followup"]
    assert parsed.rows_in == 8 == rows.height + len(parsed.quarantined)
    assert rows["_origin"].to_list() == [f"高血压随访_20261011.csv#{n}" for n in (2, 6, 9, 11)]
    assert rows["name"].to_list() == ["张三", "欧阳\r\n小明", "张三", "李四"]
    assert rows["medication_adherence"].to_list() == ["规律", "规律", "规律,间断", "规律"]
    assert rows["_source_key"].to_list() == ["hypertension_followup:GY1", "hypertension_followup:GY5",
                                             "hypertension_followup:GY7", "hypertension_followup:GY8"]  # fmt: skip
    assert set(rows["source_encoding"]) == {"gb18030" if encoding == "gbk" else "utf-8-sig" if bom else "utf-8"}
    bad = [(q.origin, q.error_code, q.original) for q in parsed.quarantined]
    assert bad == [
        ("高血压随访_20261011.csv#3", "csv_row_malformed", lines[2]),
        ("高血压随访_20261011.csv#4", "csv_row_malformed", lines[3]),
        ("高血压随访_20261011.csv#5", "csv_row_malformed", lines[4]),
        ("高血压随访_20261011.csv#8", "record_key_missing", lines[6]),
    ]
    messages = [q.message for q in parsed.quarantined]
    assert "10 fields where the header has 11" in messages[0] and "not closed" in messages[1]
    assert "byte ff" in messages[2] and "随访编号" in messages[3]
    assert parsed.data_day == date(2026, 10, 11)  # the Sunday ending the week of the latest visit


def test_files_the_contract_does_not_allow_are_rejected_whole():
    reader = _reader()
    good = "\r\n".join([FOLLOWUP_HEADER, _followup(1)]).encode()
    cases = {
        "体检汇总_20261011.csv": (good, "file_name_invalid", "健康档案_<YYYYMMDD>[_n].csv"),
        "高血压随访_20261399.csv": (good, "file_name_invalid", "20261399"),
        "高血压随访_20261011.xlsx": (good, "format_invalid", ".csv"),
        "高血压随访_20261011.CSV": (b"PK\x03\x04" + good, "format_invalid", "binary"),
        "糖尿病随访_20261011.xlsx": (good, "format_invalid", "zip"),
        "预防接种_20261011.csv": (good, "headers_invalid", "疫苗名称 (vaccine_name)"),
        "健康档案_20261011.csv": (b"", "headers_invalid", "empty"),
        "健康档案_20261012.csv": ("档案编号".encode() + b"\xff\r\n\xfe\xff" * 3, "encoding_invalid", "gb18030"),
    }
    for name, (data, code, expected) in cases.items():
        parsed = reader.parse(Path(name), name, data, "ORG")
        assert parsed.rejected is not None and parsed.rejected[0] == code, name
        assert expected in parsed.rejected[1], (name, parsed.rejected[1])
    missing = FOLLOWUP_HEADER.replace("身份证号,", "")
    parsed = reader.parse(Path("x"), "高血压随访_20261011.csv", f"{missing}\r\n".encode(), "ORG")
    assert parsed.rejected is not None and parsed.rejected[0] == "headers_invalid"
    assert "身份证号 (id_no)" in parsed.rejected[1]


def test_data_day_is_the_end_of_the_period_due():
    contract = load_contract(str(CONTRACT))
    sunday, week = date(2026, 10, 11), (date(2026, 10, 6), date(2026, 10, 9))
    assert contract.data_day(week, date(2026, 10, 11)) == sunday  # exported on the Sunday: on time
    assert contract.data_day(week, date(2026, 10, 14)) == sunday  # exported on Wednesday after: late
    assert contract.data_day((date(2016, 3, 1), date(2026, 8, 12)), date(2026, 9, 30)) == date(2026, 9, 30)  # history
    assert contract.data_day((date(2016, 3, 1), date(2026, 10, 9)), date(2026, 10, 14)) == sunday  # a late history
    assert contract.data_day(None, date(2026, 10, 14)) == date(2026, 10, 14)


def test_files_skips_lock_and_partial_files(tmp_path):
    names = ("健康档案_20261011.csv", "x/体检汇总.csv", "~$糖尿病随访_20261011.xlsx", "高血压随访_20261011.csv.part",
             ".hidden.csv", ".tmp/健康档案_20261012.csv")  # fmt: skip
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert sorted(p.relative_to(tmp_path).as_posix() for p in _reader().files(tmp_path)) == [
        "x/体检汇总.csv", "健康档案_20261011.csv"
    ]  # fmt: skip


def test_excel_rows_headers_and_values():
    book = Workbook()
    sheet = book.active
    sheet.title = "老年人体检"
    sheet.append(["老年人健康体检表（2026年10月）"])  # a title row above the header
    sheet.append(["体检编号", "档案编号", "身份证号", "姓名", "体检日期", "身高（cm）", "体重(kg)", "收缩压(mmHg)",
                  "备注"])  # fmt: skip
    sheet.append(["TJ1", "A1", "410182195001011234", "王五", datetime(2026, 10, 9), 166.5, 60.0, 138, "复查"])
    sheet.append([])
    sheet.append([None, "A2", "410182195001011234", "赵六", "2026-10-09"])  # no record id
    sheet.append(["TJ3", "A3", "410182195001011234", "孙七", "2026-10-10", None, None, None, None, "多余"])
    sheet.append(["TJ4", "A4", "", "周八", "2026-10-10"])
    raw = io.BytesIO()
    book.save(raw)
    parsed = _reader().parse(Path("x"), "老年人体检_20261011.xlsx", raw.getvalue(), "ORG")
    assert parsed.rejected is None and parsed.rows_in == 4
    rows = parsed.tables["ph_elderly_checkup"]
    assert rows["_origin"].to_list() == [
        "老年人体检_20261011.xlsx!老年人体检#3",
        "老年人体检_20261011.xlsx!老年人体检#7",
    ]
    first = rows.row(0, named=True)
    assert (first["checkup_date"], first["height"], first["weight"], first["sbp"], first["fbg"]) == (
        "2026-10-09", "166.5", "60", "138", None
    )  # fmt: skip
    assert json.loads(first["extra_columns"]) == {"备注": "复查"} and first["source_format"] == "xlsx"
    assert rows["id_no"].to_list() == ["410182195001011234", None]  # content defects land (blank = NULL)
    assert [(q.origin, q.error_code) for q in parsed.quarantined] == [
        ("老年人体检_20261011.xlsx!老年人体检#5", "record_key_missing"),
        ("老年人体检_20261011.xlsx!老年人体检#6", "xlsx_row_malformed"),
    ]
    assert json.loads(parsed.quarantined[1].original)["cells"][-1] == "多余"
    assert parsed.data_day == date(2026, 10, 11)


def test_institution_contract_override(tmp_path):
    text = CONTRACT.read_text(encoding="utf-8").replace("身份证号, 身份证号码, 身份证件号码", "证件号码")
    own = tmp_path / "own_contract.yaml"
    own.write_text(text.replace('version: "1.0"', 'version: "1.0-local"'), encoding="utf-8")
    reader = make_kind(SourceConfig("public_health", {"contract": str(own)}))
    assert reader.contract.version == "1.0-local"
    data = "\r\n".join([FOLLOWUP_HEADER.replace("身份证号", "证件号码"), _followup(1)]).encode("gbk")
    parsed = reader.parse(Path("x"), "高血压随访_20261011.csv", data, "ORG")
    assert parsed.tables["ph_hypertension_followup"]["id_no"].to_list() == ["410182196104101660"]
    assert make_kind(SourceConfig("public_health", {})).contract.version == "1.0"
    with pytest.raises(SourceError, match="cannot be used"):
        make_kind(SourceConfig("public_health", {"contract": str(tmp_path / "missing.yaml")}))


def _stamp(path: Path, data: bytes, at: datetime) -> None:
    path.write_bytes(data)
    os.utime(path, (at.timestamp(), at.timestamp()))


def test_exports_land_and_match_truth(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=SHORTS)
    synthetic.generate(config, size="tiny", out_dir=config.data_dir, seed=7, kinds=("public_health",))
    counts, files = _truth(config)
    defects = _defects(config)
    malformed = {(d["org_code"], d["local_key"]) for d in defects if d["defect_type"] == "malformed_csv"}
    late_files = {(d["org_code"], d["source_table"]) for d in defects if d["defect_type"] == "late_delivery"}
    assert malformed and late_files
    # files the contract refuses, dropped next to the exports of one institution
    org = config.institution("GWWSY").org_code
    folder = config.data_dir / "sources" / org / "public_health"
    bad_name = b"\xef\xbb\xbf" + "\r\n".join([FOLLOWUP_HEADER, _followup(1)]).encode()
    no_ids = "\r\n".join([FOLLOWUP_HEADER.replace("身份证号,", ""), _followup(2)]).encode("gbk")
    _stamp(folder / "随访汇总_20261012.csv", bad_name, datetime(2026, 10, 12, 21))
    _stamp(folder / "高血压随访_20261013.csv", no_ids, datetime(2026, 10, 13, 21))
    encodings: dict[str, str] = {}
    for inst in config.institutions:  # what each institution's export system writes, read by hand
        sample = next((config.data_dir / "sources" / inst.org_code / "public_health").glob("健康档案_*.csv"))
        try:
            sample.read_bytes().decode("utf-8")
            encodings[inst.org_code] = "utf-8"
        except UnicodeDecodeError:
            encodings[inst.org_code] = "gb18030"
    assert set(encodings.values()) == {"utf-8", "gb18030"}

    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        runs = ingest(wh, config, kinds=["public_health"])
        assert not [r.error for r in runs if r.error] and len(runs) == len(SHORTS)
        quarantine = wh.query("SELECT org_code, origin, error_code, message, original FROM ops.quarantine "
                              "WHERE source_kind = 'public_health'")  # fmt: skip
        for inst in config.institutions:
            for dataset, table in TABLES.items():
                key = (inst.org_code, dataset)
                landed = wh.scalar(f"SELECT count(*) FROM raw.{table} WHERE _org_code = ?", [inst.org_code])
                refused = sum(1 for o, origin, *_ in quarantine
                              if o == inst.org_code and origin.split("#")[0] in files.get(key, ()))  # fmt: skip
                assert landed + refused == counts[key], (inst.short, dataset)
            names = {n for (n,) in wh.query("SELECT name FROM raw.ph_health_record WHERE _org_code = ?",
                                            [inst.org_code])}  # fmt: skip
            with next(config.data_dir.glob(f"sources/{inst.org_code}/public_health/健康档案_20260930.csv")).open(
                encoding="gbk" if encodings[inst.org_code] == "gb18030" else "utf-8", errors="replace", newline=""
            ) as handle:
                expected = {r["姓名"] for r in csv.DictReader(handle)}
            assert len(expected - names) <= 1, inst.short  # Chinese names intact (one line may be malformed)
            found = {e for (e,) in wh.query("SELECT DISTINCT source_encoding FROM raw.ph_vaccination "
                                            "WHERE _org_code = ? UNION SELECT DISTINCT source_encoding "
                                            "FROM raw.ph_health_record WHERE _org_code = ?",
                                            [inst.org_code, inst.org_code])}  # fmt: skip
            assert found == {encodings[inst.org_code]}, inst.short
        # every labelled malformed line is quarantined with its reason; nothing else from the exports is
        bad_rows = {(o, origin): (code, msg) for o, origin, code, msg, _ in quarantine if "#" in origin}
        assert set(bad_rows) == malformed
        assert all(code == "csv_row_malformed" and msg for code, msg in bad_rows.values())
        # the two refused files: whole, with their bytes, the reason naming what was expected
        rejected = {origin: (code, msg, bytes(raw)) for o, origin, code, msg, raw in quarantine if "#" not in origin}
        assert rejected == {
            "随访汇总_20261012.csv": ("file_name_invalid", rejected["随访汇总_20261012.csv"][1], bad_name),
            "高血压随访_20261013.csv": ("headers_invalid", rejected["高血压随访_20261013.csv"][1], no_ids),
        }
        assert "高血压随访_<YYYYMMDD>[_n].csv" in rejected["随访汇总_20261012.csv"][1]
        assert "身份证号 (id_no)" in rejected["高血压随访_20261013.csv"][1]
        entity = wh.scalar("SELECT entity FROM ops.ingest_batch WHERE window_start = '高血压随访_20261013.csv'")
        assert entity == "ph_hypertension_followup"
        # timeliness: a late week is late on its data day; days with only on-time exports are on time
        day_of = {(o, p): d for o, p, d in wh.query("SELECT org_code, path, data_day FROM ops.ingest_file "
                                                    "WHERE status = 'loaded'")}  # fmt: skip
        late = {(o, d): m for o, d, m in wh.query("SELECT org_code, day, late_minutes FROM ops.source_health "
                                                  "WHERE source_kind = 'public_health'")}  # fmt: skip
        late_days = {(o, day_of[(o, p)]) for o, p in late_files}
        assert all(late[day] > 0 for day in late_days)
        on_time = {(o, d) for (o, p), d in day_of.items() if (o, p) not in late_files} - late_days
        assert on_time and all(late[day] == 0 for day in on_time)
        reconciled = wh.query("SELECT sum(rows_in), sum(rows_loaded + rows_unchanged + rows_quarantined) "
                              "FROM ops.ingest_batch WHERE source_kind = 'public_health'")[0]  # fmt: skip
        assert reconciled[0] == reconciled[1] == sum(counts.values()) + 2
        before = {t: wh.scalar(f"SELECT count(*) FROM raw.{t}") for t in TABLES.values()}
        again = ingest(wh, config, kinds=["public_health"])
        assert sum(r.rows_loaded for r in again) == 0 and sum(r.files_skipped for r in again) > 0
        assert {t: wh.scalar(f"SELECT count(*) FROM raw.{t}") for t in TABLES.values()} == before
        assert wh.scalar("SELECT count(*) FROM ops.quarantine") == len(quarantine)
