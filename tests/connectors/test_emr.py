"""EMR connector: CDA documents and FHIR bundles land with header, sections and the whole text; bad ones quarantined."""

from __future__ import annotations

import csv
import json

import synthetic
from connectors.registry import ingest
from tests.conftest import write_config
from warehouse import Warehouse, ensure_core


def _truth(config) -> tuple[dict[str, set[str]], list[dict[str, str]]]:
    keys: dict[str, set[str]] = {}
    with (config.data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["entity"] == "clinical_document":
                keys.setdefault(r["org_code"], set()).add(r["local_key"])
    with (config.data_dir / "truth" / "defects.csv").open(encoding="utf-8") as handle:
        defects = [r for r in csv.DictReader(handle) if r["source_kind"] == "emr"]
    return keys, defects


def test_cda_and_fhir_documents_land_and_match_truth(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=("RMYY", "RXYY"), overrides={})
    synthetic.generate(config, size="tiny", out_dir=config.data_dir, seed=11, kinds=("emr",))
    truth, defects = _truth(config)
    rxyy, rmyy = config.institution("RXYY").org_code, config.institution("RMYY").org_code
    rmyy_folder = config.data_dir / "sources" / rmyy / "emr"
    rxyy_folder = config.data_dir / "sources" / rxyy / "emr"
    good_cda = sorted(rmyy_folder.rglob("*.xml"))[0]
    broken_cda = good_cda.with_name("BROKEN.xml")
    broken_cda.write_bytes(good_cda.read_bytes()[:300])
    bundle_file = sorted(rxyy_folder.rglob("*.json"))[0]
    bundle = json.loads(bundle_file.read_text(encoding="utf-8"))
    bundle["entry"][0]["resource"]["status"] = 42  # not a FHIR code
    bundle["identifier"]["value"] = "INVALID-1"
    (bundle_file.parent / "INVALID-1.json").write_text(json.dumps(bundle, ensure_ascii=False), encoding="utf-8")
    malformed = {(d["org_code"], d["local_key"]) for d in defects if d["defect_type"] == "malformed_xml"}
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        runs = ingest(wh, config, kinds=["emr"])
        assert not [r.error for r in runs if r.error]
        for org in (rmyy, rxyy):
            landed = {k for (k,) in wh.query("SELECT document_id FROM raw.emr_document WHERE _org_code = ?", [org])}
            bad = wh.query("SELECT origin, error_code FROM ops.quarantine WHERE org_code = ?", [org])
            bad_keys = {o.rsplit("/", 1)[1].rsplit(".", 1)[0] for o, _ in bad}
            assert landed | (bad_keys - {"BROKEN", "INVALID-1"}) == truth[org]
            assert {k for o, k in malformed if o == org} <= bad_keys
        codes = dict(wh.query("SELECT origin, error_code FROM ops.quarantine"))
        assert codes[broken_cda.relative_to(rmyy_folder).as_posix()] == "cda_unparseable"
        assert codes[(bundle_file.parent / "INVALID-1.json").relative_to(rxyy_folder).as_posix()] == "fhir_invalid"
        reason = wh.scalar("SELECT message FROM ops.quarantine WHERE error_code = 'fhir_invalid' AND origin LIKE ?",
                           ["%INVALID-1%"])  # fmt: skip
        assert "status" in reason
        # the CDA header, sections and whole text
        doc_id = good_cda.stem
        row = wh.query_dicts("SELECT * FROM raw.emr_document WHERE document_id = ?", [doc_id])[0]
        assert row["document_text"] == good_cda.read_text(encoding="utf-8") and row["format"] == "cda"
        assert row["patient_id"].startswith("BR") and len(row["id_card_no"]) == 18 and row["encounter_key"]
        assert row["type_code"] in ("34117-2", "18842-5") and row["_origin"] == good_cda.relative_to(
            rmyy_folder).as_posix()  # fmt: skip
        sections = wh.query("SELECT section_title, entry_codes FROM raw.emr_section WHERE document_id = ? "
                            "ORDER BY CAST(ordinal AS INTEGER)", [doc_id])  # fmt: skip
        assert len(sections) >= 3 and any(codes and "ICD-10" in codes for _, codes in sections)
        every = wh.scalar("SELECT count(*) FROM raw.emr_document d WHERE format = 'cda' AND NOT EXISTS "
                          "(SELECT 1 FROM raw.emr_section s WHERE s.document_id = d.document_id)")  # fmt: skip
        assert every == 0
        # FHIR bundles fill the same document columns; every entry kept as a resource row
        fhir = wh.query_dicts("SELECT * FROM raw.emr_document WHERE format = 'fhir'")
        assert fhir and all(d["patient_id"] is None or d["patient_id"].startswith("BR") for d in fhir)
        assert all(d["encounter_key"] and d["diagnosis_codes"] and d["id_card_no"] for d in fhir)
        resources = wh.scalar("SELECT count(*) FROM raw.emr_fhir_resource")
        assert resources == 6 * len(fhir)  # Composition, Patient, Encounter, Condition, Practitioner, Organization
        missing_pid = [d for d in defects if d["defect_type"] == "missing_required" and d["org_code"] == rxyy]
        assert wh.scalar("SELECT count(*) FROM raw.emr_document WHERE format = 'fhir' AND patient_id IS NULL") == len(
            missing_pid)  # fmt: skip
        again = ingest(wh, config, kinds=["emr"])
        assert sum(r.rows_loaded for r in again) == 0
