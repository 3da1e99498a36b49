"""The Dagster job end to end on both warehouses, and lineage from an exported CSV row back to the source row."""

from __future__ import annotations

import csv
import sqlite3
import subprocess
import sys
from pathlib import Path

from hutong import stages
from pipelines.definitions import build_definitions
from tests.conftest import write_config
from tests.his_tables import execute, write_tables
from warehouse import Warehouse

ROOT = Path(__file__).resolve().parents[2]


def test_dagster_definitions_validate():
    dagster = Path(sys.executable).parent / "dagster"
    out = subprocess.run(
        [str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr


def _sources(config) -> dict[str, str]:
    """Write the hand-made HIS tables at each institution's configured SQLite path; returns org → file."""
    files = {}
    for inst in config.institutions:
        url = str(inst.sources["his"].get("url"))
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_tables(url, str(inst.sources["his"].get("vendor")))
        files[inst.org_code] = str(path)
    return files


def test_slice_job_and_lineage(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=("RMYY", "FYBJY"), synthetic_size=None)
    files = _sources(config)
    rmyy = config.institution("RMYY").org_code
    execute(f"sqlite:///{files[rmyy]}", "UPDATE MZ_GHXX SET GHSJ = NULL WHERE GHID = 'G00004'")
    defs = build_definitions(config)
    result = defs.resolve_job_def("hutong_slice").execute_in_process()
    assert result.success
    day = stages.today(config)
    export_file = stages.exports_dir(config) / "encounter_csv" / day.isoformat() / f"{rmyy}.csv"
    with export_file.open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9  # 10 registrations, G00004 held back (no visit time: error rule)
    assert all("G00004" not in r["_origin"] for r in rows)
    assert all(r["id_no"].startswith("410182") and "********" in r["id_no"] for r in rows)  # masked
    assert all(r["patient_name"][1:] and set(r["patient_name"][1:]) == {"*"} for r in rows)
    row = next(r for r in rows if r["local_encounter_id"] == "G00007")
    with Warehouse(warehouse_url) as wh:
        raw = wh.query_dicts(
            "SELECT * FROM raw.his_encounter WHERE _org_code = ? AND _source_key = ? AND _record_hash = ?",
            [row["org_code"], row["_source_key"], row["_record_hash"]],
        )
        batch = wh.query_dicts("SELECT * FROM ops.ingest_batch WHERE batch_id = ?", [row["_batch_id"]])
        held = wh.query(
            "SELECT rule_id, raw_origin FROM quality.problem_record WHERE org_code = ? AND rule_id = 'ENC-START-TIME'",
            [rmyy],
        )
        delivery = wh.query_dicts("SELECT * FROM feeds.delivery WHERE org_code = ?", [rmyy])
    assert len(raw) == 1 and raw[0]["_origin"] == row["_origin"] == "HIS-A:MZ_GHXX#G00007"
    assert batch[0]["status"] == "succeeded" and batch[0]["org_code"] == rmyy
    table, key = row["_origin"].split(":", 1)[1].split("#")
    with sqlite3.connect(files[rmyy]) as source:
        source_row = source.execute(f"SELECT GHSJ, KSMC, BRID FROM {table} WHERE GHID = ?", [key]).fetchone()
    assert source_row == (raw[0]["start_time"], raw[0]["dept_name"], raw[0]["patient_id"])
    assert row["start_time"] == source_row[0] and row["dept_name"] == source_row[1]
    assert held == [("ENC-START-TIME", "HIS-A:MZ_GHXX#G00004")]
    assert delivery[0]["record_count"] == 9 and delivery[0]["checksum"].startswith("sha256:")
    report = stages.reports_dir(config) / f"quality_{day.isoformat()}.html"
    assert "ENC-START-TIME" in report.read_text(encoding="utf-8")

    # Re-running the whole job changes nothing: no new raw rows, same export file.
    before = export_file.read_bytes()
    with Warehouse(warehouse_url) as wh:
        raw_count = wh.count("raw.his_encounter") + wh.count("raw.his_patient")
    assert defs.resolve_job_def("hutong_slice").execute_in_process().success
    with Warehouse(warehouse_url) as wh:
        assert wh.count("raw.his_encounter") + wh.count("raw.his_patient") == raw_count
        assert wh.count("feeds.delivery") == 2
    assert export_file.read_bytes() == before
