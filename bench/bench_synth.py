"""Benchmark: synthetic county generation throughput, wall time and peak memory per size.

Usage: .venv/bin/python bench/bench_synth.py [size ...]   (default: medium county)
Each size runs in its own process (so peak RSS is that size's own) and writes to a temporary folder; medium also
runs with one process as the baseline for the two-worker speed-up. Worker RSS is the largest forked worker's peak
(workers share the population pages copy-on-write with the main process). CPU s is user + system time of the
main process and its workers: on a shared machine it moves far less with other load than the wall time does.
Target (issue 3): `county` within 15 minutes and 4 GB peak RSS on 2 cores, streaming to disk.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(size: str, workers: int) -> None:
    import synthetic
    from hutong.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = synthetic.generate(load_config(), size=size, out_dir=Path(tmp), seed=20261124, workers=workers)
        elapsed = time.perf_counter() - started
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime
        disk = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    by_kind = {"his": sum(c.patients + c.outpatient + c.inpatient for c in summary.his.values())}
    for kinds in summary.other.values():
        for kind, counts in kinds.items():
            by_kind[kind] = by_kind.get(kind, 0) + sum(counts.values())
    print(json.dumps({
        "size": size, "workers": workers, "persons": summary.persons, "records": summary.records,
        "seconds": elapsed, "cpu_seconds": cpu, "peak_rss_mib": me.ru_maxrss / 1024,
        "worker_rss_mib": children.ru_maxrss / 1024, "disk_mib": disk / 2**20,
        "by_kind": by_kind,
    }))  # fmt: skip


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--one":
        one(sys.argv[2], int(sys.argv[3]))
        return
    sizes = sys.argv[1:] or ["medium", "county"]
    header = ("size", "workers", "persons", "records", "wall s", "records/s", "CPU s", "main RSS", "worker RSS", "disk")
    print("{:8s} {:>7s} {:>9s} {:>11s} {:>8s} {:>10s} {:>8s} {:>9s} {:>10s} {:>8s}".format(*header), flush=True)
    for size in sizes:
        # the baseline (one process) only for the sizes where it costs little; the county runs with 2 workers
        for workers in (1, 2) if size != "county" else (2,):
            out = subprocess.run([sys.executable, __file__, "--one", size, str(workers)], capture_output=True,
                                 text=True, check=True)  # fmt: skip
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['size']:8s} {workers:>7d} {r['persons']:>9,} {r['records']:>11,} {r['seconds']:>8.1f} "
                  f"{r['records'] / r['seconds']:>10,.0f} {r['cpu_seconds']:>8.1f} {r['peak_rss_mib']:>7,.0f}MB "
                  f"{r['worker_rss_mib']:>8,.0f}MB {r['disk_mib']:>6,.0f}MB  {r['by_kind']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
