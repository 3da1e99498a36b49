"""Synthetic PACS: DICOM headers read back with pydicom (UTF-8 names, HIS patient ids), one report per study,
labelled defects present, deterministic bytes."""

from __future__ import annotations

import csv
import json
import sqlite3
import warnings
from pathlib import Path

import pydicom
import pytest

import synthetic
from hutong.config import load_config
from synthetic.pacs import exams


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return synthetic.generate(load_config(), size="demo", out_dir=tmp_path_factory.mktemp("pacs"), seed=44,
                              kinds=("pacs",))  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _his_patient(out_dir: Path, org: str, encounter_key: str) -> str | None:
    with sqlite3.connect(out_dir / "sources" / org / "his.sqlite") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "MZ_GHXX" in tables:
            row = conn.execute("SELECT BRID FROM MZ_GHXX WHERE GHID = ? UNION ALL SELECT BRID FROM ZY_BAXX "
                               "WHERE ZYH = ?", [encounter_key, encounter_key]).fetchone()  # fmt: skip
        else:
            row = conn.execute("SELECT patient_id FROM visit WHERE visit_id = ?", [encounter_key]).fetchone()
    return row[0] if row else None


def test_studies_read_back_and_match_reports(county):
    defects = {(d["org_code"], d["local_key"]): d for d in _read(county.truth_dir / "defects.csv")
               if d["source_kind"] == "pacs"}  # fmt: skip
    codes = {e.code for e in exams()}
    studies = 0
    for org in county.his:
        root = county.out_dir / "sources" / org / "pacs"
        for path in sorted(root.glob("dicom/*/*.dcm")):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no over-long values, no invalid VRs
                ds = pydicom.dcmread(path)
            report = json.loads((root / "reports" / path.parent.name / f"{ds.AccessionNumber}.json").read_text())
            defect = defects.get((org, ds.AccessionNumber), {}).get("defect_type")
            assert ds.SpecificCharacterSet == "ISO_IR 192" and str(ds.PatientName).split("^")[0] == report[
                "patient_name"][0]  # fmt: skip
            assert ds.StudyInstanceUID.startswith("2.25.") and ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            his_id = _his_patient(county.out_dir, org, ds.AdmissionID)
            if defect == "missing_required":
                assert ds.PatientID == ""
            else:
                assert ds.PatientID == his_id == report["patient_id"]
            assert (report["exam_code"] not in codes) == (defect == "unmapped_code")
            assert (report["report_time"] < report["study_time"]) == (defect == "out_of_range")
            studies += 1
    assert studies > 500
    records = [r for r in _read(county.truth_dir / "source_records.csv") if r["source_system"] == "PACS"]
    assert len(records) == 2 * studies
    assert {d["defect_type"] for d in defects.values()} == {"missing_required", "unmapped_code", "out_of_range"}


def test_same_seed_same_dicom_bytes(county, tmp_path):
    again = synthetic.generate(load_config(), size="demo", out_dir=tmp_path, seed=44, kinds=("pacs",))
    for path in sorted((county.out_dir / "sources").rglob("*.dcm"))[:100]:
        assert path.read_bytes() == (again.out_dir / path.relative_to(county.out_dir)).read_bytes()


def test_headers_are_the_bytes_pydicom_writes(county):
    """The direct encoder (synthetic.dicom) writes what pydicom's own writer makes of the same header."""
    import io

    paths = sorted((county.out_dir / "sources").rglob("*.dcm"))[:50]
    assert paths
    for path in paths:
        ds = pydicom.dcmread(path)
        again = io.BytesIO()
        ds.save_as(again, enforce_file_format=True)
        assert again.getvalue() == path.read_bytes(), path


def test_flat_json_is_what_json_writes():
    from synthetic.files import flat_json

    for record in ({}, {"a": 1, "检查所见": '双肺"纹理"\n清晰', "b": True, "c": None, "d": 1.5, "e": False}):
        assert flat_json(record) == json.dumps(record, ensure_ascii=False, indent=1)
