"""dbt staging → cdr on both warehouses: latest versions, deletes applied, codes decoded, lineage kept."""

from __future__ import annotations

from connectors.his import ingest_institution
from hutong.dbt_runner import run_dbt
from tests.his_tables import execute, write_tables
from warehouse import Warehouse, ensure_core


def test_cdr_patient_and_encounter(tmp_path, warehouse_url):
    src_a = f"sqlite:///{tmp_path / 'a.sqlite'}"
    src_b = f"sqlite:///{tmp_path / 'b.sqlite'}"
    write_tables(src_a, "vendor_a")
    write_tables(src_b, "vendor_b")
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        ingest_institution(wh, "ORG-A", src_a, "vendor_a")
        ingest_institution(wh, "ORG-B", src_b, "vendor_b")
        execute(src_a, "UPDATE GY_BRXX SET BRXM = '张伟伟', GXSJ = '2026-11-01 00:00:00' WHERE BRID = 'A0001'")
        ingest_institution(wh, "ORG-A", src_a, "vendor_a")
    run_dbt(
        ["build", "--select", "+cdr__patient", "+cdr__encounter"], warehouse_url, target_path=tmp_path / "dbt_target"
    )
    with Warehouse(warehouse_url) as wh:
        patients = {r["patient_key"]: r for r in wh.query_dicts("SELECT * FROM cdr.cdr__patient")}
        encounters = {r["encounter_key"]: r for r in wh.query_dicts("SELECT * FROM cdr.cdr__encounter")}
        raw_a0001 = wh.query(
            "SELECT _record_hash FROM raw.his_patient WHERE _org_code = 'ORG-A' AND patient_id = 'A0001' "
            "ORDER BY _source_updated_at DESC"
        )
    # 6 of vendor A's 7 keyed patients (A0006 soft-deleted) + 3 of vendor B
    assert len(patients) == 9 and "ORG-A|HIS-A|A0006" not in patients
    a1 = patients["ORG-A|HIS-A|A0001"]
    assert a1["name"] == "张伟伟" and a1["_record_hash"] == raw_a0001[0][0]  # latest version wins
    assert (a1["sex_code"], a1["sex_name"], str(a1["birth_date"])) == ("1", "男性", "1961-01-11")
    assert patients["ORG-A|HIS-A|A0007"]["sex_code"] is None  # unmapped local value stays visible as NULL
    assert patients["ORG-A|HIS-A|A0007"]["sex_source_value"] == "不详"
    b2 = patients["ORG-B|HIS-B|B0002"]
    assert (b2["sex_code"], str(b2["birth_date"]), b2["_origin"]) == ("1", "1982-02-12", "HIS-B:patient#B0002")
    assert len(encounters) == 12
    v1 = encounters["ORG-B|visit:V1"]
    assert (v1["encounter_class_code"], v1["encounter_class_name"]) == ("3", "住院")
    assert str(v1["start_time"]) == "2026-10-05 10:00:00" and str(v1["end_time"]) == "2026-10-09 10:00:00"
    assert v1["patient_found"] is True and encounters["ORG-B|visit:V2"]["patient_found"] is False
    g2 = encounters["ORG-A|MZ_GHXX:G00003"]
    assert (g2["encounter_class_code"], g2["_origin"]) == ("2", "HIS-A:MZ_GHXX#G00003")
