"""HIS connector: both vendor schemas, incremental watermarks, soft deletes, quarantine, reconciliation."""

from __future__ import annotations

import pytest

from connectors.his import SourceError, ingest_all, ingest_institution, load_vendor
from tests.conftest import MARIADB, write_config
from tests.his_tables import execute, scratch_mariadb, write_tables
from warehouse import Warehouse, ensure_core


def _reconciles(wh: Warehouse) -> None:
    bad = wh.query(
        "SELECT batch_id FROM ops.ingest_batch WHERE rows_in <> rows_loaded + rows_unchanged + rows_quarantined"
    )
    assert bad == []


def test_vendor_mappings_load():
    a, b = load_vendor("vendor_a"), load_vendor("vendor_b")
    assert a.source_system == "HIS-A" and {t.name for t in a.tables} == {
        "GY_BRXX", "MZ_GHXX", "ZY_BAXX", "MZ_CFMX", "ZY_YZ", "ZY_SSJL", "SF_FYMX", "GY_DMZD", "GY_YGXX"}  # fmt: skip
    assert b.source_system == "HIS-B" and {t.name for t in b.tables} == {
        "patient", "visit", "prescription", "inpatient_order", "surgery", "fee", "code_dict", "staff"}  # fmt: skip
    dictionary = next(t for t in a.tables if t.name == "GY_DMZD")
    assert dictionary.snapshot and dictionary.keys == ("DMLB", "DMZ")
    with pytest.raises(SourceError, match="unknown HIS vendor"):
        load_vendor("vendor_zz")


def test_vendor_a_full_then_incremental(tmp_path, warehouse_url):
    src = f"sqlite:///{tmp_path / 'his_a.sqlite'}"
    write_tables(src, "vendor_a")
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        first = ingest_institution(wh, "ORG-A", src, "vendor_a", batch_size=3)
        assert (first.rows_in, first.rows_loaded, first.rows_quarantined) == (18, 17, 1)
        assert first.batches >= 6  # keyset pages of 3
        # nothing changed → the watermark makes the next pull read nothing
        assert ingest_institution(wh, "ORG-A", src, "vendor_a").rows_in == 0
        # one update and one soft delete at the source
        execute(src, "UPDATE GY_BRXX SET LXDH = '13999999999', GXSJ = '2026-11-01 09:00:00' WHERE BRID = 'A0002'")
        execute(src, "UPDATE MZ_GHXX SET ZFBZ = '1', GXSJ = '2026-11-01 09:30:00' WHERE GHID = 'G00003'")
        second = ingest_institution(wh, "ORG-A", src, "vendor_a")
        assert (second.rows_in, second.rows_loaded) == (2, 2)
        ops = dict(
            wh.query(
                "SELECT _source_key, _op FROM raw.his_patient WHERE _batch_id IN "
                "(SELECT batch_id FROM ops.ingest_batch WHERE rows_loaded > 0) AND phone = '13999999999'"
            )
        )
        assert ops == {"GY_BRXX:A0002": "U"}
        assert wh.query("SELECT _op FROM raw.his_encounter WHERE _source_key = 'MZ_GHXX:G00003' "
                        "ORDER BY _source_updated_at") == [("I",), ("D",)]  # fmt: skip
        # a full re-read lands nothing new and quarantines nothing twice
        full = ingest_institution(wh, "ORG-A", src, "vendor_a", full=True)
        assert (full.rows_loaded, full.rows_unchanged, full.rows_quarantined) == (0, 17, 1)
        assert wh.count("ops.quarantine") == 1
        q = wh.query_dicts("SELECT error_code, message, origin, original FROM ops.quarantine")[0]
        assert q["error_code"] == "missing_key" and "BRID" in q["message"]
        assert "无主键".encode() in bytes(q["original"])
        lineage = wh.query("SELECT _origin, _source_system, _org_code FROM raw.his_patient WHERE patient_id = 'A0001'")
        assert lineage == [("HIS-A:GY_BRXX#A0001", "HIS-A", "ORG-A")]
        _reconciles(wh)


def test_vendor_b_values_land_as_received(tmp_path, warehouse_url):
    src = f"sqlite:///{tmp_path / 'his_b.sqlite'}"
    write_tables(src, "vendor_b")
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        summary = ingest_institution(wh, "ORG-B", src, "vendor_b")
        assert (summary.rows_in, summary.rows_loaded) == (5, 5)
        row = wh.query_dicts("SELECT * FROM raw.his_encounter WHERE encounter_id = 'V1'")[0]
        assert (row["encounter_type"], row["start_time"], row["end_time"]) == (
            "IP", "2026-10-05 10:00:00", "2026-10-09 10:00:00")  # fmt: skip
        assert row["_source_key"] == "visit:V1" and row["_op"] == "I"
        _reconciles(wh)


def test_unreachable_source_is_recorded_and_others_continue(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=("RMYY", "FYBJY"), synthetic_size=None)
    good, bad = config.institutions[1], config.institutions[0]
    (tmp_path / "data" / "sources" / good.org_code).mkdir(parents=True)
    write_tables(str(good.sources["his"].get("url")), "vendor_b")
    with Warehouse(warehouse_url) as wh:
        summaries = ingest_all(wh, list(config.institutions))
        by_org = {s.org_code: s for s in summaries}
        assert "cannot read HIS" in by_org[bad.org_code].error
        assert by_org[good.org_code].rows_loaded == 5
        health = dict(wh.query("SELECT org_code, batches_failed FROM ops.source_health"))
        assert health == {bad.org_code: 1, good.org_code: 0}
        failed = wh.query("SELECT status, error FROM ops.ingest_batch WHERE org_code = ?", [bad.org_code])
        assert failed[0][0] == "failed" and "cannot read HIS" in failed[0][1]


@pytest.mark.mariadb
def test_vendor_b_on_real_mariadb(warehouse_url):
    with scratch_mariadb(MARIADB) as src:
        write_tables(src, "vendor_b")
        with Warehouse(warehouse_url) as wh:
            ensure_core(wh)
            summary = ingest_institution(wh, "ORG-M", src, "vendor_b", batch_size=2)
            assert (summary.rows_in, summary.rows_loaded) == (5, 5)
            assert wh.query("SELECT name, birth_date FROM raw.his_patient WHERE patient_id = 'B0002'") == [
                ("周杰", "1982-02-12")
            ]
            execute(src, "UPDATE patient SET is_deleted = '1', last_modified = '2026-11-02 00:00:00' "
                    "WHERE patient_id = 'B0003'")  # fmt: skip
            again = ingest_institution(wh, "ORG-M", src, "vendor_b")
            assert (again.rows_in, again.rows_loaded) == (1, 1)
            assert wh.scalar("SELECT _op FROM raw.his_patient WHERE patient_id = 'B0003' AND _op = 'D'") == "D"
            _reconciles(wh)


def test_code_dictionary_snapshot_and_detail_tables(tmp_path, warehouse_url):
    """Local code tables (no update column, two-part key) are read whole each pull; detail tables by watermark."""
    src = f"sqlite:///{tmp_path / 'his_a.sqlite'}"
    write_tables(src, "vendor_a")
    execute(src, "INSERT INTO GY_DMZD (DMLB, DMZ, DMMC) VALUES ('ZD', 'ZD0001', '原发性高血压'), "
                 "('KS', '0101', '内科门诊'), ('ZD', NULL, '无代码')")  # fmt: skip
    execute(src, "INSERT INTO MZ_CFMX (CFMXID, GHID, BRID, YPDM, YPMC, SL, DJ, JE, KFSJ, GXSJ, ZFBZ) VALUES "
                 "('G00001-1', 'G00001', 'A0002', 'YP0001', '苯磺酸氨氯地平片', '2', '18.50', '37.00', "
                 "'2026-10-11 09:01:00', '2026-10-11 09:30:00', '0')")  # fmt: skip
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        first = ingest_institution(wh, "ORG-A", src, "vendor_a", batch_size=2)
        assert wh.count("raw.his_code_dict") == 2 and wh.count("raw.his_prescription") == 1
        assert wh.scalar("SELECT _source_key FROM raw.his_code_dict WHERE code = 'ZD0001'") == "GY_DMZD:ZD|ZD0001"
        q = wh.query("SELECT error_code, message FROM ops.quarantine WHERE origin LIKE 'HIS-A:GY_DMZD#%'")
        assert q == [("missing_key", "GY_DMZD.DMZ is empty")]
        assert first.rows_quarantined == 2  # with the keyless patient of the hand-made tables
        # the dictionary is re-read every pull but nothing new lands; a renamed code lands as an update
        again = ingest_institution(wh, "ORG-A", src, "vendor_a")
        assert (again.rows_in, again.rows_loaded, again.rows_unchanged) == (3, 0, 2)
        execute(src, "UPDATE GY_DMZD SET DMMC = '高血压' WHERE DMZ = 'ZD0001'")
        ingest_institution(wh, "ORG-A", src, "vendor_a")
        ops = wh.query("SELECT dmmc, _op FROM (SELECT name AS dmmc, _op, _ingested_at FROM raw.his_code_dict "
                       "WHERE code = 'ZD0001') t ORDER BY _ingested_at")  # fmt: skip
        assert ops == [("原发性高血压", "I"), ("高血压", "U")]
        assert wh.count("ops.quarantine") == 2  # the keyless code once, the keyless patient once
        _reconciles(wh)
