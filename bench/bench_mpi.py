"""Benchmark: the master patient index at county scale, each measurement in its own process (own peak RSS).

    nice -n 10 .venv/bin/python bench/bench_mpi.py [persons] [--skip-splink] [--keep=DIR]   (default: 1,000,000 persons)

Data: the synthetic population generator (households, twins, same-name neighbours, children with a parent's
phone) and the synthetic HIS patient-row generator (the same identity noise and defects as the generated county:
同音字/形近字 typos, missing and legacy 15-digit ids, other documents, changed phones and addresses, swapped
dates, wrong check characters, sex/birth inconsistent with the id). Each resident gets a public-health record at
a township centre (60 %) and patient records at the hospitals and township centres that saw them; this gives
≈1 M source identity records for 1 M residents. Ground truth = the generating person.

Parts, each in a child process:
1. `match`: raw → mpi on a DuckDB warehouse: collect, normalize, block, score, cluster, persist (person, xref,
   identity, event, link_stats). Records/s, wall, peak RSS, pairwise precision/recall/F1.
2. `lookup`: PIX lookup (system, local id → EMPI) and golden record p50/p99 over 2,000 random identities,
   PDQ search p50/p99 over 200.
3. `splink`: the same raw records through plain Splink 5 on DuckDB (default comparisons — NameComparison,
   DateOfBirthComparison, ExactMatch, LevenshteinAtThresholds — no Chinese-specific normalization, u by random
   sampling, m by EM), clustered at 0.95: wall, peak RSS, precision/recall/F1. The baseline.
Targets (issue 5, 2 cores): full match ≤ 2 min, peak RSS ≤ 3 GB, lookup p99 ≤ 50 ms, F1 above Splink's.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl  # noqa: E402

RAW_COLUMNS = ("patient_id", "name", "sex", "birth_date", "id_type", "id_no", "phone", "address")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(persons: int, out: Path) -> dict[str, int]:
    """Identity records (raw shape) with the true person id, written to out/raw.parquet."""
    import synthetic
    from hutong.config import load_config
    from synthetic.his import _patient_row, plan_institutions
    from synthetic.population import generate_population

    config = load_config(ROOT / "config" / "county.yaml")
    end = date(2026, 10, 31)
    people = generate_population(config.county, persons, 20261124, end)
    plans = plan_institutions(config, people, 365, synthetic.load_profiles(), end)
    hospitals = [p for p in plans if p.type == "二级医院"]
    by_town: dict[str, list] = {}
    for inst in config.institutions:
        if inst.type != "二级医院":
            by_town.setdefault(inst.township, []).append(next(p for p in plans if p.org_code == inst.org_code))
    rng = random.Random(5)
    rows: dict[str, list] = {c: [] for c in ("org_code", "source_system", *RAW_COLUMNS, "person_id")}
    counters: dict[tuple[str, str], int] = {}
    seen = datetime(2026, 1, 1)

    def emit(plan, person, system: str) -> None:
        n = counters[(plan.org_code, system)] = counters.get((plan.org_code, system), 0) + 1
        key = f"{'BR' if system != 'PH' else 'PH'}{n:08d}"
        row = _patient_row(plan, person, key, rng, lambda *a: None, seen + timedelta(minutes=n), end)
        values = row[:8]
        if system == "PH":
            values[4] = None  # health records carry the 身份证号 without a document type
        for col, value in zip(RAW_COLUMNS, values, strict=True):
            rows[col].append(value)
        rows["org_code"].append(plan.org_code)
        rows["source_system"].append(system)
        rows["person_id"].append(person.person_id)

    weights = [p.beds for p in hospitals]
    for person in people:
        local = by_town.get(person.township_code, [])
        if local and rng.random() < 0.6:
            emit(local[0], person, "PH")
        if rng.random() < 0.28:
            for plan in {
                id(h): h for h in rng.choices(hospitals, weights=weights, k=rng.choice((1, 1, 1, 2)))
            }.values():
                emit(plan, person, "HIS-A" if plan.vendor == "vendor_a" else "HIS-B")
        if local and rng.random() < 0.14:
            plan = rng.choice(local)
            emit(plan, person, "HIS-A" if plan.vendor == "vendor_a" else "HIS-B")
    frame = pl.DataFrame(rows, schema={c: pl.String for c in rows})
    frame.write_parquet(out / "raw.parquet")
    return {"persons": persons, "records": frame.height}


def _truth_pr(frame: pl.DataFrame, cluster: str) -> dict[str, float]:
    def pairs(keys: list[str]) -> int:
        n = frame.group_by(keys).len()["len"].cast(pl.Int64)
        return int((n * (n - 1) // 2).sum())

    tp, pred, actual = pairs([cluster, "person_id"]), pairs([cluster]), pairs(["person_id"])
    p, r = tp / pred if pred else 1.0, tp / actual if actual else 1.0
    return {"precision": round(p, 5), "recall": round(r, 5), "f1": round(2 * p * r / (p + r), 5)}


def part_match(work: Path) -> dict:
    from hutong.config import load_config
    from mpi.link import run_mpi
    from warehouse import Warehouse, ensure_raw_table

    townships = list(load_config(ROOT / "config" / "county.yaml").county["townships"])
    raw = pl.read_parquet(work / "raw.parquet")
    url = f"duckdb:///{work / 'index.duckdb'}"
    with Warehouse(url) as wh:
        ensure_raw_table(wh, "his_patient", list(RAW_COLUMNS))
        stamp = datetime(2026, 10, 31)
        lineage = raw.select(
            pl.col("org_code").alias("_org_code"), pl.col("source_system").alias("_source_system"),
            (pl.lit("patient:") + pl.col("patient_id")).alias("_source_key"), pl.lit("bench").alias("_batch_id"),
            pl.lit(stamp).alias("_ingested_at"), pl.lit(stamp).alias("_source_updated_at"), pl.lit("I").alias("_op"),
            pl.col("patient_id").alias("_record_hash"), pl.lit("bench").alias("_origin"),
        )  # fmt: skip
        wh.load("raw.his_patient", pl.concat([raw.select(RAW_COLUMNS), lineage], how="horizontal"))
        wh.execute("CHECKPOINT")
        del raw, lineage  # the bench's own copy is not the match's memory (read again for the truth below)
        rss_before = _rss_mb()
        t0 = time.perf_counter()
        result = run_mpi(wh, townships)
        wall = time.perf_counter() - t0
        xref = wh.query_df("SELECT org_code, source_system, local_id, empi_id FROM mpi.xref")
        t1 = time.perf_counter()
        again = run_mpi(wh, townships)
        rerun = time.perf_counter() - t1
    raw = pl.read_parquet(work / "raw.parquet")
    frame = xref.join(
        raw.select("org_code", "source_system", pl.col("patient_id").alias("local_id"), "person_id"),
        on=["org_code", "source_system", "local_id"],
    )
    return {
        "records": result.identities, "persons_found": result.persons, "true_persons": raw["person_id"].n_unique(),
        "review_candidates": result.candidates, "wall_s": round(wall, 1),
        "records_per_s": round(result.identities / wall), "rerun_s": round(rerun, 1), "rerun_new": again.new,
        "peak_rss_mb": round(_rss_mb()), "rss_before_match_mb": round(rss_before), **_truth_pr(frame, "empi_id"),
        "stages_s_rss_mb": result.stages,
    }  # fmt: skip


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def part_lookup(work: Path) -> dict:
    from mpi import lookup
    from warehouse import Warehouse

    with Warehouse(f"duckdb:///{work / 'index.duckdb'}", read_only=True) as wh:
        keys = wh.query("SELECT org_code, source_system, local_id FROM mpi.xref USING SAMPLE 2000 ROWS (reservoir, 7)")
        pix, gold = [], []
        for org, system, local in keys:
            t = time.perf_counter()
            empi = lookup.empi_for(wh, system, local, org)
            pix.append(time.perf_counter() - t)
            t = time.perf_counter()
            lookup.golden(wh, empi)
            gold.append(time.perf_counter() - t)
        people = wh.query_dicts(
            "SELECT name, birth_date, sex_code, phone FROM mpi.person USING SAMPLE 200 ROWS (reservoir, 7)"
        )
        pdq = []
        lookup.search(wh, name=people[0]["name"], birth_date=people[0]["birth_date"])  # warm-up (imports)
        for p in people:
            t = time.perf_counter()
            lookup.search(wh, name=p["name"], birth_date=p["birth_date"], sex=p["sex_code"])
            pdq.append(time.perf_counter() - t)
    return {
        "pix_p50_ms": _pct(pix, 0.5), "pix_p99_ms": _pct(pix, 0.99), "golden_p50_ms": _pct(gold, 0.5),
        "golden_p99_ms": _pct(gold, 0.99), "pdq_search_p50_ms": _pct(pdq, 0.5), "pdq_search_p99_ms": _pct(pdq, 0.99),
        "peak_rss_mb": round(_rss_mb()),
    }  # fmt: skip


def part_splink(work: Path) -> dict:
    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    raw = pl.read_parquet(work / "raw.parquet").with_row_index("unique_id")
    data = raw.select("unique_id", "name", "sex", "birth_date", "id_no", "phone", "address").to_pandas()
    t0 = time.perf_counter()
    db_api = DuckDBAPI()
    sdf = db_api.register(data)
    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("name"),
            cl.ExactMatch("sex"),
            cl.LevenshteinAtThresholds("birth_date", 1),
            cl.ExactMatch("id_no"),
            cl.ExactMatch("phone"),
            cl.LevenshteinAtThresholds("address", 2),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("id_no"),
            block_on("name", "birth_date"),
            block_on("phone"),
            block_on("name", "address"),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(sdf, settings, log_level="WARNING")
    linker.training.estimate_probability_two_random_records_match([block_on("id_no")], recall=0.9)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("name", "birth_date"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("phone"))
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, 0.95)
    assigned = pl.from_pandas(clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]])
    wall = time.perf_counter() - t0
    frame = raw.select(pl.col("unique_id").cast(pl.Int64), "person_id").join(
        assigned.with_columns(pl.col("unique_id").cast(pl.Int64), pl.col("cluster_id").cast(pl.String)), on="unique_id"
    )
    return {"records": raw.height, "wall_s": round(wall, 1), "records_per_s": round(raw.height / wall),
            "peak_rss_mb": round(_rss_mb()), **_truth_pr(frame, "cluster_id")}  # fmt: skip


PARTS = {"match": part_match, "lookup": part_lookup, "splink": part_splink}


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--part":
        work = Path(sys.argv[3])
        print(json.dumps(PARTS[sys.argv[2]](work)))
        return
    persons = int(next((a for a in sys.argv[1:] if a.isdigit()), 1_000_000))
    parts = ["match", "lookup"] + ([] if "--skip-splink" in sys.argv else ["splink"])
    print(f"load average before: {os.getloadavg()}", flush=True)
    keep = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--keep=")), None)
    with tempfile.TemporaryDirectory(prefix="hutong_bench_mpi_") as tmp:
        work = Path(keep or tmp)
        work.mkdir(parents=True, exist_ok=True)
        (work / "index.duckdb").unlink(missing_ok=True)
        t0 = time.perf_counter()
        if (work / "raw.parquet").is_file():  # --keep=DIR reuses the records generated by an earlier run
            print(f"generate: reused {work / 'raw.parquet'}", flush=True)
        else:
            gen = generate(persons, work)
            print(f"generate: {gen} in {time.perf_counter() - t0:.0f}s", flush=True)
        results = {}
        for part in parts:
            out = subprocess.run([sys.executable, __file__, "--part", part, str(work)], capture_output=True, text=True)
            if out.returncode:
                print(f"{part}: FAILED\n{out.stderr[-3000:]}", flush=True)
                continue
            results[part] = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{part}: {results[part]}  (load average {os.getloadavg()[0]:.1f})", flush=True)
        if "match" in results and "splink" in results:
            m, s = results["match"], results["splink"]
            print(f"hutong vs plain splink: wall {m['wall_s']}s vs {s['wall_s']}s, "
                  f"peak RSS {m['peak_rss_mb']} vs {s['peak_rss_mb']} MB, F1 {m['f1']} vs {s['f1']}")  # fmt: skip


if __name__ == "__main__":
    main()
