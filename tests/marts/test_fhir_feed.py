"""The FHIR feed on both warehouses: every delivered bundle validates with fhir.resources' R4B models, carries
patients, encounters, conditions, procedures, lab observations and reports from the CDR, codes diagnoses in ICD-10
through the approved map, never carries a phone, and a re-run sends nothing twice."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle

from marts.delivery import run_feed
from marts.feed_config import Retry, Target, feed
from marts.formats import BuildError, Record
from marts.formats.fhir import FhirFormat
from warehouse import Warehouse

PERIOD = "2026-11-01"
ICD10 = "urn:oid:2.16.156.10011.2.3.3.11"
PHONE = re.compile(r"1[3-9][0-9]{9}")


def _bundles(paths: list[Path]) -> list[dict]:
    return [json.loads(line) for p in paths for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_fhir_bundles_validate_and_are_sent_once(county):
    fhir = feed("fhir_encounter")
    box = county.data_dir / "fhir_box"
    target = Target("box", str(box), retry=Retry(attempts=1))
    with Warehouse(county.url) as wh:
        first = [run_feed(wh, fhir, target, org, PERIOD, county.data_dir) for org in county.orgs]
        second = [run_feed(wh, fhir, target, org, PERIOD, county.data_dir) for org in county.orgs]
        encounters = wh.count("cdr.cdr__encounter")
        phones = {r[0] for r in wh.query("SELECT phone FROM cdr.cdr__patient WHERE phone IS NOT NULL")}
        excluded = wh.query_dicts("SELECT reason_code, reason FROM feeds.exclusion WHERE feed = 'fhir_encounter'")
    bundles = _bundles(sorted(box.rglob("*.ndjson")) or sorted(p for p in box.rglob("*") if p.is_file()))
    sent = sum(r.sent for r in first)
    assert sent and len(bundles) == sent and sum(r.sent for r in second) == 0  # a re-run sends nothing again
    assert sent + sum(r.excluded for r in first) <= encounters
    kinds: dict[str, int] = {}
    icd10 = 0
    for raw in bundles:
        Bundle.model_validate(raw)  # R4B (FHIR 4.3) models, as on the wire
        assert raw["type"] == "transaction" and all(e["request"]["method"] == "PUT" for e in raw["entry"])
        text = json.dumps(raw, ensure_ascii=False)
        assert not set(PHONE.findall(text)) & phones
        for entry in raw["entry"]:
            resource = entry["resource"]
            kinds[resource["resourceType"]] = kinds.get(resource["resourceType"], 0) + 1
            if resource["resourceType"] == "Condition":
                icd10 += any(c.get("system") == ICD10 for c in resource["code"]["coding"])
    expected = {"Patient", "Encounter", "Condition", "Procedure", "Observation", "DiagnosticReport"}
    expected |= {"MedicationRequest"}
    assert expected <= set(kinds), kinds
    assert icd10 > 0.9 * kinds["Condition"], (icd10, kinds["Condition"])  # local codes go out as ICD-10
    assert all(x["reason_code"] and x["reason"] for x in excluded)


def test_each_resource_of_a_bundle_is_validated():
    """Resources are validated with their own R4B models: a bad value in any of them holds the record back; a
    patient already validated in the run is not validated again, but a changed one is."""
    fmt = FhirFormat(feed("fhir_encounter"))
    row = {"patient_key": "P1", "empi_id": "E1", "sex_code": "1", "birth_date": "1970-01-01"}
    bundle = fmt.build(Record("K1", "ORG", row, {"observations": [{"id": "O1", "display": "Hb", "value_num": 1}]}))
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Patient", "Encounter", "Observation"]
    with pytest.raises(BuildError, match="effectiveDateTime"):
        fmt.build(Record("K2", "ORG", row, {"observations": [{"id": "O2", "effective_time": "Oct 1st"}]}))
    with pytest.raises(BuildError, match="birthDate"):
        fmt.build(Record("K3", "ORG", {**row, "birth_date": "01/01/1970"}, {}))
