"""Stage functions: synthetic sources are regenerated only when asked for something new, and a new county
starts from an empty warehouse."""

from __future__ import annotations

from hutong import stages
from tests.conftest import write_config
from warehouse import Warehouse


def test_synth_skips_when_unchanged_and_resets_warehouse_when_regenerated(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb", shorts=("RMYY", "QLWSY"))
    first = stages.synth(config, "tiny", 5)
    assert not first.skipped and first.summary.his
    stages.ingest_his(config)
    with Warehouse(config.warehouse_url) as wh:
        landed = wh.count("raw.his_encounter")
    assert landed > 0
    assert stages.synth(config, "tiny", 5).skipped  # same size, seed and config: nothing to do
    with Warehouse(config.warehouse_url) as wh:
        assert wh.count("raw.his_encounter") == landed
    assert not stages.synth(config, "tiny", 6).skipped
    with Warehouse(config.warehouse_url) as wh:
        assert not wh.table_exists("raw.his_encounter")  # the old county's rows are gone
    summaries = stages.ingest_his(config)
    with Warehouse(config.warehouse_url) as wh:
        his_tables = [f"raw.{t}" for t in wh.tables("raw") if t.startswith("his_")]
        assert wh.count("raw.his_encounter") > 0
        assert sum(wh.count(t) for t in his_tables) == sum(s.rows_loaded for s in summaries)
