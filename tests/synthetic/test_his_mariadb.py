"""The synthetic HIS written to the real MariaDB server and pulled from there by the HIS connector."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

import synthetic
from connectors.his import entities, ingest_institution, load_vendor
from tests.conftest import MARIADB, write_config
from warehouse import Warehouse, ensure_core


@pytest.mark.mariadb
def test_synthetic_his_on_mariadb_round_trip(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("RMYY", "QLWSY"))
    tag = uuid.uuid4().hex[:8]
    template = f"{MARIADB}/hutong_test_synth_{{short}}_{tag}?charset=utf8mb4"
    try:
        summary = synthetic.generate(config, size="tiny", out_dir=tmp_path / "data", seed=9, his_url_template=template,
                                     kinds=("his",))  # fmt: skip
        with Warehouse(config.warehouse_url) as wh:
            ensure_core(wh)
            for inst in config.institutions:
                url = template.format(short=inst.short.lower(), org_code=inst.org_code)
                vendor = load_vendor(str(inst.sources["his"].get("vendor")))
                pulled = ingest_institution(wh, inst.org_code, url, vendor.vendor)
                counts = summary.his[inst.org_code]  # outpatient rows include the labelled duplicates
                source = create_engine(url)
                with source.connect() as conn:
                    in_source = {t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar() for t in
                                 vendor.tables}  # fmt: skip
                source.dispose()
                assert pulled.rows_loaded == sum(in_source.values()) and pulled.rows_quarantined == 0
                for table in vendor.tables:  # every mapped vendor table lands whole, under its own source key
                    raw = entities()[table.entity]["raw_table"]
                    landed = wh.count(f"raw.{raw}", "_org_code = ? AND _source_key LIKE ?",
                                      [inst.org_code, f"{table.name}:%"])  # fmt: skip
                    assert landed == in_source[table.name], table.name
                patients = wh.count("raw.his_patient", "_org_code = ?", [inst.org_code])
                assert patients == counts.patients
                assert wh.count("raw.his_encounter", "_org_code = ?", [inst.org_code]) == (
                    counts.outpatient + counts.inpatient
                )
                assert wh.count("raw.his_prescription", "_org_code = ?", [inst.org_code]) > 0
            names = wh.query("SELECT name FROM raw.his_patient WHERE name IS NOT NULL LIMIT 5")
        assert names and all(len(n) >= 2 and "\\u" not in n for (n,) in names)  # Chinese survives utf8mb4
    finally:
        server = create_engine(MARIADB)
        with server.begin() as conn:
            for inst in config.institutions:
                conn.execute(text(f"DROP DATABASE IF EXISTS hutong_test_synth_{inst.short.lower()}_{tag}"))
        server.dispose()
