"""A real next day: the synthetic county grows by one day, the new records are ingested and matched against the
existing index incrementally (existing EMPI ids untouched, new records of known people join their EMPI id)."""

from __future__ import annotations

import polars as pl

from hutong import stages
from mpi.link import mpi_link
from tests.conftest import write_config
from tests.mpi.county import KEY, County, pair_counts, truth
from warehouse import Warehouse


def test_next_day_is_matched_incrementally(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path / 'w.duckdb'}", shorts=("RMYY", "QLWSY", "GWWSY"))
    stages.synth(config, "tiny", 11)
    stages.ingest(config)
    first = mpi_link(config)
    with Warehouse(config.warehouse_url) as wh:
        before = wh.query_df("SELECT * FROM mpi.xref")
        events = wh.count("mpi.event")
    stages.synth_next_day(config)
    stages.ingest(config)
    messages: list[str] = []
    second = mpi_link(config, progress=messages.append)
    assert second.new > 0 and messages and "new" in messages[0]
    assert second.identities == first.identities + second.new
    with Warehouse(config.warehouse_url) as wh:
        after = wh.query_df("SELECT * FROM mpi.xref")
        assert wh.count("mpi.event") > events
    kept = before.join(after, on=KEY, suffix="_after")
    assert kept.height == before.height
    assert (kept["empi_id"] == kept["empi_id_after"]).all() and (kept["linked_at"] == kept["linked_at_after"]).all()

    county = County(config, config.data_dir / "truth")
    frame = after.join(truth(county, config.warehouse_url), on=KEY)
    assert frame.height == after.height
    tp, predicted, actual = pair_counts(frame, "empi_id", "person_id")
    assert tp / predicted >= 0.999 and tp / actual >= 0.99
    known = frame.join(before.select(KEY), on=KEY).select("person_id", pl.col("empi_id").alias("old")).unique()
    new = frame.join(before.select(KEY), on=KEY, how="anti").join(known, on="person_id")
    assert (new["empi_id"] == new["old"]).all()
