"""Benchmark: the whole slice (synth → ingest → dbt → quality → export) on the embedded warehouse.

Prints wall time and throughput per stage and peak RSS. Usage: .venv/bin/python bench/bench_slice.py [size]
(tiny / demo / medium / county; default demo). Runs in a temporary data folder.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hutong import stages
from hutong.config import DEFAULT_CONFIG, load_config


def main() -> None:
    size = sys.argv[1] if len(sys.argv) > 1 else "demo"
    with tempfile.TemporaryDirectory() as tmp:
        raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
        raw["platform"]["data_dir"] = tmp
        raw["warehouse"]["url"] = f"duckdb:///{tmp}/warehouse/hutong.duckdb"
        raw["synthetic"] = {"size": size, "seed": 20261124}
        path = Path(tmp) / "county.yaml"
        path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
        config = load_config(path)
        day = stages.today(config)
        print(f"slice benchmark, size {size}, {len(config.institutions)} institutions, DuckDB")
        total = time.perf_counter()

        started = time.perf_counter()
        result = stages.synth(config, size, 20261124, force=True)
        records = result.summary.records
        elapsed = time.perf_counter() - started
        print(f"  synth      {elapsed:7.2f} s  {records:>10,} records  {records / elapsed:>10,.0f} records/s")

        started = time.perf_counter()
        summaries = stages.ingest_his(config)
        rows = sum(s.rows_in for s in summaries)
        elapsed = time.perf_counter() - started
        print(f"  ingest     {elapsed:7.2f} s  {rows:>10,} rows     {rows / elapsed:>10,.0f} rows/s")

        started = time.perf_counter()
        stages.ingest_his(config)
        print(f"  re-ingest  {time.perf_counter() - started:7.2f} s  (nothing new: watermarks)")

        started = time.perf_counter()
        stages.transform(config)
        print(f"  dbt build  {time.perf_counter() - started:7.2f} s")

        started = time.perf_counter()
        outcomes, _ = stages.check_quality(config, day)
        evaluated = sum(o.evaluated for o in outcomes)
        print(f"  quality    {time.perf_counter() - started:7.2f} s  {evaluated:>10,} record checks")

        started = time.perf_counter()
        deliveries = stages.export(config, day)
        exported = sum(d.record_count for d in deliveries)
        elapsed = time.perf_counter() - started
        print(f"  export     {elapsed:7.2f} s  {exported:>10,} records  {exported / elapsed:>10,.0f} records/s")
        print(f"  total      {time.perf_counter() - total:7.2f} s")
        print(f"  peak RSS   {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


if __name__ == "__main__":
    main()
