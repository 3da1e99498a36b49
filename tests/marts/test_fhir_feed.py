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
from marts.formats.fhir import (
    CHUNK,
    VALIDATORS_ENV,
    FhirFormat,
    bundle_text,
    validators,
)
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


def test_a_page_is_validated_in_the_validator_processes_like_one_by_one(monkeypatch):
    """build_many sends a page's bundles (as the JSON text that goes out) to the validator processes: the same
    bundles and the same reasons as validating each in the run, with the bad records held back in place."""
    monkeypatch.setenv(VALIDATORS_ENV, "2")
    fmt, inline = FhirFormat(feed("fhir_encounter")), FhirFormat(feed("fhir_encounter"))
    row = {"patient_key": "P1", "empi_id": "E1", "sex_code": "1", "birth_date": "1970-01-01"}
    records = []
    for i in range(3 * CHUNK + 7):  # several chunks and a short last one
        when = "Oct 1st" if i % 31 == 5 else "2026-10-01 08:00:00"  # not a FHIR dateTime: held back
        obs = [{"id": f"O{i}", "display": "Hb", "value_num": i, "effective_time": when}]
        records.append(Record(f"K{i}", "ORG", {**row, "patient_key": f"P{i % 4}"}, {"observations": obs}))
    built = fmt.build_many(records)
    assert validators() is not None and fmt.pooled == len(records)  # the page went to the validator processes
    bad = [i for i, item in enumerate(built) if isinstance(item, BuildError)]
    assert bad == [i for i in range(len(records)) if i % 31 == 5]
    for record, item in zip(records, built, strict=True):
        try:
            expected = bundle_text(inline.build(record))
        except BuildError as exc:
            assert item.code == exc.code == "fhir_invalid" and item.reason == exc.reason
            continue
        assert item == expected
    assert fmt.package(built[:2]) == (built[0] + "\n" + built[1] + "\n").encode()
