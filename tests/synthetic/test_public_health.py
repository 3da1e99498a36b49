"""Synthetic public-health exports: dated files with Chinese headers, GBK or UTF-8 CSV, Excel, every row in the
truth, valid 身份证号 except the labelled ones, every labelled defect visible in the files, deterministic."""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import pytest
from openpyxl import load_workbook

import synthetic
from hutong.config import load_config
from synthetic.identity import is_valid
from synthetic.public_health import headers

SEED = 55
DATE_HEADERS = ("随访日期", "接种日期", "体检日期", "建档日期")
DATASETS = {spec["file"]: name for name, spec in headers().items() if isinstance(spec, dict) and "file" in spec}


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return synthetic.generate(load_config(), size="tiny", out_dir=tmp_path_factory.mktemp("ph"), seed=SEED,
                              kinds=("public_health",))  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _has_chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def _export(path: Path) -> tuple[list[str], dict[int, list[str] | None], str]:
    """Header, rows by line number (None where a line does not decode) and encoding of one export."""
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True).active
        values = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        return values[0], dict(enumerate(values[1:], start=2)), "xlsx"
    lines = path.read_bytes().split(b"\r\n")
    try:
        header, encoding = lines[0].decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        header, encoding = lines[0].decode("gbk"), "gbk"
    rows: dict[int, list[str] | None] = {}
    for number, raw in enumerate(lines[1:], start=2):  # line by line: a broken quote must not swallow the rest
        if not raw:  # the final line break
            continue
        try:
            rows[number] = next(csv.reader([raw.decode(encoding)]))
        except UnicodeDecodeError:
            rows[number] = None
    return next(csv.reader([header])), rows, encoding


@pytest.fixture(scope="module")
def exports(county):
    """(org, file name) → (path, header, rows by line, encoding) for every public-health export."""
    found = {}
    for inst in load_config().with_source("public_health"):
        folder = county.out_dir / "sources" / inst.org_code / "public_health"
        for path in sorted(folder.iterdir()):
            found[(inst.org_code, path.name)] = (path, *_export(path))
    return found


def test_files_are_dated_with_chinese_headers_and_encodings(county, exports):
    assert exports
    kinds_seen = defaultdict(set)
    for (org, name), (path, header, _, encoding) in exports.items():
        stem = path.stem.split("_")
        assert stem[0] in DATASETS, name
        assert len(stem[1]) == 8 and date(int(stem[1][:4]), int(stem[1][4:6]), int(stem[1][6:]))
        spec = headers()[DATASETS[stem[0]]]
        assert header == list(spec["columns"].values())
        assert all(_has_chinese(h) for h in header)
        kinds_seen[org].add(encoding)
        if encoding == "gbk":  # GBK files really are GBK: Chinese text that UTF-8 cannot read
            raw = path.read_bytes()
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            assert _has_chinese(raw.split(b"\r\n")[0].decode("gbk"))
    csv_encodings = {e for encodings in kinds_seen.values() for e in encodings if e != "xlsx"}
    assert csv_encodings == {"gbk", "utf-8"}  # some institutions export GBK, others UTF-8
    assert all(len(encodings - {"xlsx"}) == 1 for encodings in kinds_seen.values())  # one encoding per institution
    assert any("xlsx" in encodings for encodings in kinds_seen.values())
    assert {DATASETS[name.split("_")[0]] for _, name in exports} == set(DATASETS.values())


def test_every_row_in_truth_and_every_defect_visible(county, exports):
    records = _read(county.truth_dir / "source_records.csv")
    truth = {(r["org_code"], r["source_table"], r["local_key"]): r for r in records if r["source_system"] == "PH"}
    persons = {r["person_id"]: r for r in _read(county.truth_dir / "persons.csv")}
    defects = [d for d in _read(county.truth_dir / "defects.csv") if d["source_kind"] == "public_health"]
    assert defects
    labelled = {(d["org_code"], d["source_table"], d["local_key"]): d for d in defects}
    broken = {(d["org_code"], d["local_key"]) for d in defects if d["defect_type"] == "malformed_csv"}
    rows_by_key: dict[tuple[str, str, str], list[str]] = {}
    headers_by_file = {}
    for (org, name), (_, header, rows, _) in exports.items():
        headers_by_file[(org, name)] = header
        for line, row in rows.items():
            if (org, f"{name}#{line}") in broken:
                assert row is None or len(row) != len(header) or row[-1].startswith("未闭合")
                continue
            assert row is not None and len(row) == len(header), (name, line)
            key = (org, name, row[0])
            assert key in truth, key  # every unbroken row is in the truth
            rows_by_key[key] = row
            person = persons[truth[key]["person_id"]]
            id_no = row[header.index("身份证号")]
            flagged = labelled.get(key, {}).get("defect_type") in {"invalid_id_check", "missing_required"}
            if not flagged:  # the true person's valid id, unless the row is labelled
                assert id_no == person["id_no"] and is_valid(id_no)
    assert len(set(truth) - set(rows_by_key)) == len(broken)  # only rows on broken lines are unreadable
    for d in defects:
        org, name, key, kind = d["org_code"], d["source_table"], d["local_key"], d["defect_type"]
        assert (org, name) in exports, d
        if kind in {"malformed_csv", "late_delivery"}:
            if kind == "late_delivery":  # every row's day lies two or more days before the file's date
                stamp = name.split("_")[1][:8]
                day = date(int(stamp[:4]), int(stamp[4:6]), int(stamp[6:]))
                header = headers_by_file[(org, name)]
                column = next(header.index(h) for h in DATE_HEADERS if h in header)
                values = [r[column] for r in exports[(org, name)][2].values() if r and len(r) == len(header)]
                assert values and all(not v or date.fromisoformat(v) <= day - timedelta(days=2) for v in values)
            continue
        if (org, name, key) not in rows_by_key:  # on a broken line too
            continue
        row, header = rows_by_key[(org, name, key)], headers_by_file[(org, name)]
        value = row[header.index(d["field"])]
        if kind == "missing_required":
            assert value == "" and d["field"] in {"身份证号", "随访日期", "接种日期", "体检日期"}
        elif kind == "invalid_id_check":
            assert len(value) == 18 and not is_valid(value)
        elif kind == "out_of_range":
            assert float(value) in {400.0, -1.0}
        elif kind == "duplicate_record":
            twins = [r for k, r in rows_by_key.items() if k[:2] == (org, name) and k[2] != key and r[1:] == row[1:]]
            assert twins, key
        else:
            raise AssertionError(f"unknown defect {kind}")
    assert {"missing_required", "invalid_id_check", "duplicate_record", "malformed_csv", "late_delivery"} <= {
        d["defect_type"] for d in defects}  # fmt: skip


def test_management_volumes_are_plausible(county):
    counts: dict[str, int] = defaultdict(int)
    for kinds in county.other.values():
        for name, n in kinds.get("public_health", {}).items():
            counts[name] += n
    assert counts["health_records"] > 0.7 * county.persons  # the stock export: most residents have a record
    assert counts["hypertension_followups"] > 0 and counts["diabetes_followups"] > 0
    assert counts["vaccinations"] > 0 and counts["elderly_checkups"] > 0


def test_same_seed_same_files(county, tmp_path):
    again = synthetic.generate(load_config(), size="tiny", out_dir=tmp_path, seed=SEED, kinds=("public_health",))
    paths = sorted((county.out_dir / "sources").rglob("public_health/*"))
    assert paths and sorted(p.relative_to(county.out_dir) for p in paths) == sorted(
        p.relative_to(again.out_dir) for p in (again.out_dir / "sources").rglob("public_health/*"))  # fmt: skip
    for path in paths:  # CSV and Excel alike are byte-identical
        assert path.read_bytes() == (again.out_dir / path.relative_to(county.out_dir)).read_bytes(), path.name


def _openpyxl_bytes(title: str, creator: str, header: list[str], rows: list[list[object]]) -> bytes:
    """What openpyxl itself writes for the rows (fixed metadata and zip timestamps, as synthetic.xlsx)."""
    import io
    import re
    import zipfile
    from datetime import datetime

    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in [header, *rows]:
        sheet.append(row)
    workbook.properties.created = workbook.properties.modified = datetime(2026, 1, 1)
    workbook.properties.creator = creator
    raw = io.BytesIO()
    workbook.save(raw)
    source = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for item in sorted(source.infolist(), key=lambda i: i.filename):
            info = zipfile.ZipInfo(item.filename, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            content = source.read(item.filename)
            if item.filename == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                 b"\\g<1>2026-01-01T00:00:00Z\\g<2>", content)  # fmt: skip
            target.writestr(info, content)
    return out.getvalue()


def test_xlsx_bytes_equal_openpyxl():
    """The fast sheet writer (synthetic.xlsx) writes what openpyxl writes for the same rows."""
    from synthetic.xlsx import workbook_bytes

    header = ["体检编号", "姓名", "收缩压(mmHg)", "空腹血糖(mmol/L)", "自理能力评估"]
    rows = [["TJ2026100112345678", "张三&<李>", 128, 6.1, "可自理"], ["TJ2", "", 400, -1, " 轻度依赖"],
            ["TJ3", "王五", 0, 166.25, None], ["TJ4", "赵六 ", 95, 1e-7, "中度依赖"]]  # fmt: skip
    for data in (rows, [], rows[:1]):
        assert workbook_bytes("老年人体检", "某卫生院", header, data) == _openpyxl_bytes(
            "老年人体检", "某卫生院", header, data
        )
