"""Fill mpi.xref from the synthetic ground truth (the MPI's perfect answer), so dbt tests do not depend on the MPI."""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path

import polars as pl

from warehouse import Warehouse, ensure_core

ENTITIES = {"patient", "health_record"}  # HIS patient ids and public-health 档案编号 are the identities xref keys


def fill_xref_from_truth(wh: Warehouse, truth_dir: Path) -> int:
    """One xref row per (org, source system, local id) of the truth's patients and health records; EMPI id =
    'E' + the true person id. Replaces mpi.xref. Returns the number of rows."""
    ensure_core(wh)
    rows: dict[tuple[str, str, str], str] = {}
    with (truth_dir / "source_records.csv").open(encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["entity"] in ENTITIES:
                rows[(r["org_code"], r["source_system"], r["local_key"])] = "E" + r["person_id"]
    now = datetime(2026, 11, 1)
    frame = pl.DataFrame(
        [(*k, v, "truth", 1.0, now) for k, v in rows.items()],
        schema={"org_code": pl.Utf8, "source_system": pl.Utf8, "local_id": pl.Utf8, "empi_id": pl.Utf8,
                "link_method": pl.Utf8, "link_score": pl.Float64, "linked_at": pl.Datetime("us")},
        orient="row",
    )  # fmt: skip
    with wh.transaction():
        wh.execute("DELETE FROM mpi.xref")
        wh.load("mpi.xref", frame)
    return frame.height
