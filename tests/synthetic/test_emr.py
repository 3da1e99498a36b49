"""Synthetic EMR: CDA documents parse (except labelled malformed ones) and quote the HIS ids; the FHIR hospital's
bundles validate with fhir.resources (FHIR R4B models); labelled defects are really there."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

import synthetic
from hutong.config import load_config

NS = {"h": "urn:hl7-org:v3"}


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return synthetic.generate(load_config(), size="demo", out_dir=tmp_path_factory.mktemp("emr"), seed=33,
                              kinds=("emr",))  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_documents_parse_validate_and_carry_defects(county):
    config = load_config()
    defects = {(d["org_code"], d["source_table"]): d for d in _read(county.truth_dir / "defects.csv")
               if d["source_kind"] == "emr"}  # fmt: skip
    truth = {(r["org_code"], r["source_table"]) for r in _read(county.truth_dir / "source_records.csv")
             if r["source_system"] == "EMR"}  # fmt: skip
    seen = set()
    kinds = {"cda": 0, "fhir": 0}
    for inst in config.with_source("emr"):
        root = county.out_dir / "sources" / inst.org_code / "emr"
        for path in sorted(root.rglob("*.*")):
            rel = path.relative_to(root).as_posix()
            seen.add((inst.org_code, rel))
            defect = defects.get((inst.org_code, rel), {}).get("defect_type")
            if path.suffix == ".json":
                kinds["fhir"] += 1
                if defect == "malformed_xml":
                    with pytest.raises(ValueError):
                        Bundle.model_validate_json(path.read_text(encoding="utf-8"))
                    continue
                bundle = Bundle.model_validate_json(path.read_text(encoding="utf-8"))
                resources = {e.resource.__class__.__name__: e.resource for e in bundle.entry}
                assert {"Composition", "Patient", "Encounter", "Condition"} <= set(resources)
                period = resources["Encounter"].period
                assert (period.end < period.start) == (defect == "discharge_before_admission")
                ids = [i.value for i in resources["Patient"].identifier or []]
                assert (len(ids) == 1) == (defect == "missing_required")
                continue
            kinds["cda"] += 1
            if defect == "malformed_xml":
                with pytest.raises(ET.ParseError):
                    ET.parse(path)
                continue
            doc = ET.parse(path).getroot()
            patient_id = doc.find("h:recordTarget/h:patientRole/h:id", NS).get("extension")
            assert (patient_id == "") == (defect == "missing_required")
            encounter = doc.find("h:componentOf/h:encompassingEncounter", NS)
            low = encounter.find("h:effectiveTime/h:low", NS).get("value")
            high = encounter.find("h:effectiveTime/h:high", NS)
            if defect == "discharge_before_admission":
                assert high is not None and high.get("value") < low
            title = doc.find("h:title", NS).text
            assert title in ("入院记录", "出院小结")
            assert doc.find(".//h:observation/h:code", NS).get("codeSystemName") == "ICD-10"
    assert kinds["cda"] > 300 and kinds["fhir"] > 10
    assert seen == truth
    assert {d["defect_type"] for d in defects.values()} >= {"missing_required", "discharge_before_admission"}


def test_same_seed_same_documents(county, tmp_path):
    again = synthetic.generate(load_config(), size="demo", out_dir=tmp_path, seed=33, kinds=("emr",))
    for path in sorted((county.out_dir / "sources").rglob("emr/**/*.*"))[:200]:
        assert path.read_bytes() == (again.out_dir / path.relative_to(county.out_dir)).read_bytes()
