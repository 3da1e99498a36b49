"""Benchmark: export feeds on a synthetic county — FHIR bundles/s, CDA documents/s and the daily feed run time.

    .venv/bin/python bench/bench_feeds.py [--size medium] [--cache DIR] [--reuse] [--institutions RXYY,QLWSY]

The county is generated, ingested, transformed (dbt) and quality-checked once, under `nice`, into the cache dir
(default ~/.cache/hutong/bench_feeds/<size>), as two warehouse snapshots: `day0.duckdb` (the generated window)
and `day1.duckdb` (one more synthetic day appended, ingested and transformed: the T+1 increment). `--reuse`
(or a finished cache) skips the build. Measurements run on copies, so the cache stays as built:

1. backlog: every feed for every institution on a copy of day0 (the whole window, to outbox folders); per feed
   records/s — FHIR bundles/s and CDA documents/s, against the plain CSV encounter feed measured in the same run;
2. daily: the ledger of (1) carried onto a copy of day1, then every feed for every institution again — the T+1
   daily feed run time. A feed examines only the ingest batches it has not covered yet (feeds.covered_batch), so
   only records with a row in day 1's batches are looked at; "re-examined" counts those found unchanged by their
   content hash (a day-1 lab result of an older encounter whose bundle is the same, say).
CPU seconds include the FHIR validator processes (marts.formats.fhir, one per core by default).
`--institutions` (short names) measures a subset of the county's institutions (both runs), for a figure in
practical time on a large county; the print says which. Prints figures and peak RSS; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FEED_TABLES = ("delivery", "delivery_item", "watermark", "covered_batch", "exclusion", "export_audit")


def _config(cache: Path, size: str) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(cache / "data")
    raw["warehouse"]["url"] = f"duckdb:///{cache}/warehouse.duckdb"
    raw["synthetic"] = {"size": size, "seed": raw.get("synthetic", {}).get("seed", 20261124)}
    path = cache / "county.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _peak_mib() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def _prepare(config, day) -> None:
    """Ingest, reference tables (when the stage exists), dbt build and the quality rules for `day`."""
    from hutong import stages
    from quality.runner import run_rules
    from warehouse import Warehouse

    stages.ingest(config)
    stages.init(config)
    if hasattr(stages, "reference_tables"):  # ops.institution / ops.population (facility feed, marts)
        stages.reference_tables(config)
    stages.transform(config)
    with Warehouse(config.warehouse_url) as wh:
        run_rules(wh, [i.org_code for i in config.institutions], day)


def build(cache: Path, size: str) -> dict:
    """Generate + ingest + transform once; snapshot day0 and day1 warehouses."""
    from hutong import stages
    from hutong.config import load_config

    cache.mkdir(parents=True, exist_ok=True)
    config = load_config(_config(cache, size))
    started = time.perf_counter()
    result = stages.synth(config, size, int((config.synthetic or {}).get("seed", 20261124)), force=True)
    end = result.summary.end
    _prepare(config, end)
    warehouse = Path(config.warehouse_url.removeprefix("duckdb:///"))
    shutil.copyfile(warehouse, cache / "day0.duckdb")
    built0 = time.perf_counter() - started
    stages.synth_next_day(config)
    _prepare(config, end + timedelta(days=1))
    shutil.copyfile(warehouse, cache / "day1.duckdb")
    stamp = {"size": size, "end": str(end), "build_day0_s": round(built0, 1),
             "build_day1_s": round(time.perf_counter() - started - built0, 1)}  # fmt: skip
    (cache / "built.json").write_text(json.dumps(stamp), encoding="utf-8")
    return stamp


def run_all(url: str, institutions, data_dir: Path, period: str) -> tuple[float, dict[str, dict[str, float]]]:
    """Every feed × institution; wall seconds and per-feed records and seconds (a line per feed as it ends)."""
    from marts.delivery import run_feed
    from marts.feed_config import load_feeds, target_for
    from marts.formats.fhir import validator_cpu_seconds
    from warehouse import Warehouse, ensure_core

    per: dict[str, dict[str, float]] = defaultdict(
        lambda: {"records": 0, "seconds": 0.0, "cpu": 0.0, "excluded": 0, "unchanged": 0}
    )
    started = time.perf_counter()
    with Warehouse(url) as wh:
        ensure_core(wh)  # once, as marts.run.run_feeds does
        for feed in load_feeds():
            target = target_for(feed, data_dir)
            for inst in institutions:
                t0, c0 = time.perf_counter(), time.process_time() + validator_cpu_seconds()
                r = run_feed(wh, feed, target, inst.org_code, period, data_dir, ensure=False)
                per[feed.name]["seconds"] += time.perf_counter() - t0
                per[feed.name]["cpu"] += time.process_time() + validator_cpu_seconds() - c0
                per[feed.name]["records"] += r.sent
                per[feed.name]["excluded"] += r.excluded
                per[feed.name]["unchanged"] += r.unchanged
            p = per[feed.name]
            print(f"  {feed.name:28} {p['records']:>8.0f} records {p['seconds']:>7.1f} s {p['cpu']:>7.1f} CPU s",
                  file=sys.stderr, flush=True)  # fmt: skip
    return time.perf_counter() - started, per


def carry_ledger(source: Path, target_url: str) -> None:
    """The feeds.* ledger of a finished run, copied onto another warehouse (DuckDB ATTACH)."""
    from warehouse import Warehouse, ensure_core

    with Warehouse(target_url) as wh:
        ensure_core(wh)  # a cache built before a ledger table existed
        wh.execute(f"ATTACH '{source}' AS prev (READ_ONLY)")
        for table in FEED_TABLES:
            wh.execute(f"DELETE FROM feeds.{table}")
            wh.execute(f"INSERT INTO feeds.{table} SELECT * FROM prev.feeds.{table}")
        wh.execute("DETACH prev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="medium")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--reuse", action="store_true", help="use the cache as built (fail if it is not)")
    parser.add_argument("--institutions", help="comma-separated short names: measure only these institutions")
    args = parser.parse_args()
    os.nice(10)
    from hutong.config import load_config

    cache = args.cache or Path.home() / ".cache" / "hutong" / "bench_feeds" / args.size
    if not (cache / "built.json").is_file():
        if args.reuse:
            sys.exit(f"no built cache in {cache}; run without --reuse first")
        print(f"building the {args.size} county in {cache} (once) …", flush=True)
        print("built:", build(cache, args.size), flush=True)
    stamp = json.loads((cache / "built.json").read_text(encoding="utf-8"))
    config = load_config(_config(cache, args.size))
    institutions = config.institutions
    if args.institutions:
        wanted = args.institutions.split(",")
        institutions = [i for i in config.institutions if i.short in wanted]
        if len(institutions) != len(wanted):
            sys.exit(f"unknown institutions in {wanted}; known: {', '.join(i.short for i in config.institutions)}")
    work = cache / "run"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    day0, day1 = work / "day0.duckdb", work / "day1.duckdb"
    shutil.copyfile(cache / "day0.duckdb", day0)
    period = stamp["end"]
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    backlog_s, per = run_all(f"duckdb:///{day0}", institutions, work, period)
    shutil.copyfile(cache / "day1.duckdb", day1)
    carry_ledger(day0, f"duckdb:///{day1}")
    daily_s, daily = run_all(f"duckdb:///{day1}", institutions, work, period)
    daily_cpu = sum(p["cpu"] for p in daily.values())

    def rate(name: str) -> float:
        p = per[name]
        return p["records"] / p["seconds"] if p["seconds"] else 0.0

    fhir = [n for n in per if n.startswith("fhir_")]
    cda = [n for n in per if n.startswith("cda_")]
    fhir_n, fhir_s = sum(per[n]["records"] for n in fhir), sum(per[n]["seconds"] for n in fhir)
    cda_n, cda_s = sum(per[n]["records"] for n in cda), sum(per[n]["seconds"] for n in cda)
    fhir_c, cda_c = sum(per[n]["cpu"] for n in fhir), sum(per[n]["cpu"] for n in cda)
    baseline = rate("encounter_csv")
    subset = f"{len(institutions)} of {len(config.institutions)} institutions"
    if args.institutions:
        subset += f": {args.institutions}"
    print(f"\n== feeds on the {args.size} county ({subset}, window to {period})")
    print("wall seconds and records/s depend on the machine's load; CPU seconds (this process with its DuckDB")
    print("threads, plus the FHIR validator processes) and records per CPU-second are the one-core figures")
    print(f"{'feed':28} {'records':>9} {'excluded':>9} {'seconds':>9} {'records/s':>10} {'cpu s':>8} {'rec/cpu-s':>10}")
    for name, p in sorted(per.items()):
        per_cpu = p["records"] / p["cpu"] if p["cpu"] else 0.0
        print(f"{name:28} {p['records']:>9.0f} {p['excluded']:>9.0f} {p['seconds']:>9.1f} {rate(name):>10.0f} "
              f"{p['cpu']:>8.1f} {per_cpu:>10.0f}")  # fmt: skip
    print(f"FHIR bundles/s:      {fhir_n / fhir_s if fhir_s else 0:10.0f}  ({fhir_n:.0f} bundles in {fhir_s:.1f} s; "
          f"{fhir_n / fhir_c if fhir_c else 0:.0f} per CPU-second)")  # fmt: skip
    print(f"CDA documents/s:     {cda_n / cda_s if cda_s else 0:10.0f}  ({cda_n:.0f} documents in {cda_s:.1f} s; "
          f"{cda_n / cda_c if cda_c else 0:.0f} per CPU-second)")  # fmt: skip
    print(f"baseline CSV rows/s: {baseline:10.0f}  (encounter_csv, same run) — FHIR {fhir_n / fhir_s / baseline:.2f}×, "
          f"CDA {cda_n / cda_s / baseline:.2f}× of it" if baseline and fhir_s and cda_s else "")  # fmt: skip
    backlog_cpu = sum(p["cpu"] for p in per.values())
    print(f"backlog run (whole window, all feeds × institutions): {backlog_s:.1f} s ({backlog_cpu:.1f} CPU s)")
    new = sum(p["records"] for p in daily.values())
    again = sum(p["unchanged"] for p in daily.values())
    print(f"daily T+1 feed run (all feeds × all institutions, one new day): {daily_s:.1f} s ({daily_cpu:.1f} CPU s), "
          f"{new:.0f} records sent, {again:.0f} re-examined unchanged")  # fmt: skip
    own, children = _peak_mib()
    print(f"load average (1, 5, 15 min) at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"peak RSS: {own:.0f} MiB (this process), {children:.0f} MiB (largest child, e.g. dbt)")
    print(f"cache build: day0 {stamp['build_day0_s']} s, day1 {stamp['build_day1_s']} s (not part of the figures)")


if __name__ == "__main__":
    main()
