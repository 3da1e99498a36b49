"""Benchmark: raw-layer append throughput (staging + hash + dedupe + insert) on DuckDB and PostgreSQL.

Prints rows/s for a first load and for a re-load of the same rows (all unchanged), wall time and peak RSS.
Usage: .venv/bin/python bench/bench_raw_append.py [rows] (default 500000); PostgreSQL from HUTONG_BENCH_PG.
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta

import polars as pl
import psycopg

from warehouse import Warehouse, append_raw, ensure_core

BATCH = 20_000
PG_ADMIN = os.environ.get("HUTONG_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def batches(rows: int) -> list[pl.DataFrame]:
    base = datetime(2026, 10, 1)
    out = []
    for start in range(0, rows, BATCH):
        n = min(BATCH, rows - start)
        ids = [str(start + i) for i in range(n)]
        out.append(
            pl.DataFrame(
                {
                    "encounter_id": ids,
                    "patient_id": [f"BR{int(i) % 50000:08d}" for i in ids],
                    "encounter_type": ["1"] * n,
                    "start_time": [(base + timedelta(minutes=int(i))).strftime("%Y-%m-%d %H:%M:%S") for i in ids],
                    "dept_name": ["内科门诊"] * n,
                    "diagnosis_code": ["ZD0001"] * n,
                    "diagnosis_name": ["原发性高血压"] * n,
                    "_org_code": ["12410182424085941C"] * n,
                    "_source_system": ["HIS-A"] * n,
                    "_source_key": [f"MZ_GHXX:{i}" for i in ids],
                    "_source_updated_at": [base + timedelta(minutes=int(i)) for i in ids],
                    "_deleted": [False] * n,
                    "_origin": [f"HIS-A:MZ_GHXX#{i}" for i in ids],
                }
            )
        )
    return out


def run(url: str, frames: list[pl.DataFrame]) -> tuple[float, float]:
    rows = sum(f.height for f in frames)
    timings = []
    with Warehouse(url) as wh:
        ensure_core(wh)
        for label in ("first load", "re-load (unchanged)"):
            started = time.perf_counter()
            loaded = 0
            for frame in frames:
                loaded += append_raw(wh, "his_encounter", frame, uuid.uuid4().hex, datetime.now()).rows_loaded
            elapsed = time.perf_counter() - started
            timings.append(elapsed)
            print(f"  {label:22s} {rows:>9,} rows in {elapsed:6.2f} s = {rows / elapsed:>10,.0f} rows/s "
                  f"({loaded:,} new)")  # fmt: skip
    return timings[0], timings[1]


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    frames = batches(rows)
    print(f"raw append benchmark: {rows:,} encounter rows in batches of {BATCH:,}")
    with tempfile.TemporaryDirectory() as tmp:
        print("DuckDB (embedded)")
        duck = run(f"duckdb:///{tmp}/bench.duckdb", frames)
    name = f"hutong_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        print("PostgreSQL (127.0.0.1:5432)")
        pg = run(PG_ADMIN.rsplit("/", 1)[0] + f"/{name}", frames)
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    print(f"PostgreSQL / DuckDB first-load time ratio: {pg[0] / duck[0]:.2f}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB (this process)")


if __name__ == "__main__":
    main()
