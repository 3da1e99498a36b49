"""The synthetic HIS written to the real MariaDB server and pulled from there by the HIS connector."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import create_engine, text

import synthetic
from connectors.his import ingest_institution
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
                pulled = ingest_institution(wh, inst.org_code, url, str(inst.sources["his"].get("vendor")))
                counts = summary.his[inst.org_code]  # outpatient rows include the labelled duplicates
                assert pulled.rows_loaded == counts.patients + counts.outpatient + counts.inpatient
            names = wh.query("SELECT name FROM raw.his_patient WHERE name IS NOT NULL LIMIT 5")
        assert names and all(len(n) >= 2 and "\\u" not in n for (n,) in names)  # Chinese survives utf8mb4
    finally:
        server = create_engine(MARIADB)
        with server.begin() as conn:
            for inst in config.institutions:
                conn.execute(text(f"DROP DATABASE IF EXISTS hutong_test_synth_{inst.short.lower()}_{tag}"))
        server.dispose()
