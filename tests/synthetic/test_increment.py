"""Daily increments flow through incremental ingestion: new rows land as I, edits as U, cancellations as D."""

from __future__ import annotations

import csv
import json

import pytest

import synthetic
from hutong import stages
from tests.conftest import write_config
from warehouse import Warehouse


def _his_rows(wh: Warehouse) -> int:
    """Rows in every raw HIS table (patients, encounters, orders, fees, code tables ...)."""
    return sum(wh.count(f"raw.{t}") for t in wh.tables("raw") if t.startswith("his_"))


def test_next_day_lands_as_inserts_updates_and_deletes(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("RMYY", "FYBJY", "QLWSY"))
    stages.synth(config, "tiny", 5)
    stages.ingest_his(config)
    with Warehouse(config.warehouse_url) as wh:
        before = _his_rows(wh)
        old_batches = {b for (b,) in wh.query("SELECT batch_id FROM ops.ingest_batch")}
    result = synthetic.increment(config, config.data_dir)
    state = json.loads((config.data_dir / "truth" / "generation.json").read_text())
    assert state["last_day"] == result.day.isoformat() == "2026-11-01"
    changed = sum(result.updated.values())
    new = sum(c.outpatient + c.inpatient + c.patients for c in result.his.values())
    assert new > 0 and changed > 0
    summaries = stages.ingest_his(config)
    with Warehouse(config.warehouse_url) as wh:
        after = _his_rows(wh)
        ops: dict[str, int] = {}
        for op, batch in wh.query("SELECT _op, _batch_id FROM raw.his_encounter"):
            if batch not in old_batches:
                ops[op] = ops.get(op, 0) + 1
        patient_ops = dict(wh.query("SELECT _op, count(*) FROM raw.his_patient GROUP BY _op"))
    landed = sum(s.rows_loaded for s in summaries)
    assert after - before == landed
    # every new encounter is an insert; discharges of open stays are updates; cancellations are deletes
    assert ops.get("I", 0) >= sum(c.outpatient + c.inpatient for c in result.his.values())
    assert ops.get("U", 0) + ops.get("D", 0) + patient_ops.get("U", 0) >= 1
    # the new day's truth is appended: every new HIS key has its person
    with (config.data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        keys = {(r["org_code"], r["local_key"]) for r in csv.DictReader(handle)}
    with Warehouse(config.warehouse_url) as wh:
        newest = wh.query("SELECT _org_code, encounter_id FROM raw.his_encounter WHERE _op = 'I' "
                          "AND start_time LIKE '2026-11-01%'")  # fmt: skip
    assert newest and all(k in keys for k in newest)
    again = stages.ingest_his(config)  # watermarks: nothing new the second time
    with Warehouse(config.warehouse_url) as wh:
        code_dict_rows = wh.count("raw.his_code_dict")
    assert sum(s.rows_loaded for s in again) == 0
    # only the local code dictionaries (snapshots without an update timestamp) are read again, and all unchanged
    assert sum(s.rows_in for s in again) == sum(s.rows_unchanged for s in again) <= code_dict_rows


def test_increments_must_follow_in_order(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("QLWSY",))
    with pytest.raises(FileNotFoundError, match="hutong synth"):
        synthetic.increment(config, config.data_dir)
    stages.synth(config, "tiny", 5)
    from datetime import date

    with pytest.raises(ValueError, match="next increment is 2026-11-01"):
        synthetic.increment(config, config.data_dir, day=date(2026, 11, 5))
