"""Synthetic public-health exports: dated files with Chinese headers, GBK or UTF-8 CSV, Excel, every row in the
truth, valid 身份证号 except the labelled ones, labelled defects present, deterministic."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import load_workbook

import synthetic
from hutong.config import load_config
from synthetic.identity import is_valid
from synthetic.public_health import headers


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return synthetic.generate(load_config(), size="demo", out_dir=tmp_path_factory.mktemp("ph"), seed=55,
                              kinds=("public_health",))  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _rows(path: Path) -> tuple[list[str], list[list[str]], str]:
    """Header, rows and encoding of one export (CSV in GBK or UTF-8, or Excel)."""
    if path.suffix == ".xlsx":
        sheet = load_workbook(path, read_only=True).active
        values = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        return values[0], values[1:], "xlsx"
    raw = path.read_bytes()
    try:
        text, encoding = raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, encoding = raw.decode("gbk"), "gbk"
    # line by line: a broken quote must not swallow the rows after it
    rows = [next(csv.reader([line])) for line in text.split("\r\n") if line]
    return rows[0], rows[1:], encoding


def test_exports_are_dated_chinese_and_complete(county):
    config = load_config()
    truth = {(r["org_code"], r["source_table"], r["local_key"]) for r in _read(county.truth_dir / "source_records.csv")
             if r["source_system"] == "PH"}  # fmt: skip
    defects = [d for d in _read(county.truth_dir / "defects.csv") if d["source_kind"] == "public_health"]
    broken = {(d["org_code"], d["local_key"]) for d in defects if d["defect_type"] == "malformed_csv"}
    flagged_ids = {(d["org_code"], d["local_key"]) for d in defects if d["defect_type"] == "invalid_id_check"}
    files = encodings = 0
    seen_encodings = set()
    found = set()
    for inst in config.with_source("public_health"):
        for path in sorted((county.out_dir / "sources" / inst.org_code / "public_health").iterdir()):
            stem = path.stem.split("_")
            assert stem[0] in {spec["file"] for spec in headers().values() if isinstance(spec, dict)}
            assert len(stem[1]) == 8 and stem[1].isdigit()
            header, rows, encoding = _rows(path)
            seen_encodings.add(encoding)
            assert all(any("\u4e00" <= ch <= "\u9fff" for ch in h) or h.endswith(")") for h in header)
            files += 1
            for line, row in enumerate(rows, start=2):
                if (inst.org_code, f"{path.name}#{line}") in broken:
                    assert len(row) != len(header)
                    continue
                assert len(row) == len(header), (path, line)
                found.add((inst.org_code, path.name, row[0]))
                id_no = row[header.index("身份证号")]
                if id_no and len(id_no) == 18:
                    assert is_valid(id_no) != ((inst.org_code, row[0]) in flagged_ids)
        encodings += 1
    assert files > 100 and {"gbk", "utf-8", "xlsx"} <= seen_encodings
    assert found <= truth and len(truth - found) == len(broken)  # every unbroken row is in the truth
    kinds = {d["defect_type"] for d in defects}
    assert {"missing_required", "out_of_range", "late_delivery", "duplicate_record", "malformed_csv"} <= kinds


def test_same_seed_same_files(county, tmp_path):
    again = synthetic.generate(load_config(), size="demo", out_dir=tmp_path, seed=55, kinds=("public_health",))
    for path in sorted((county.out_dir / "sources").rglob("public_health/*"))[:150]:
        assert path.read_bytes() == (again.out_dir / path.relative_to(county.out_dir)).read_bytes(), path.name
