"""Benchmark: every catalog rule in the warehouse vs the same suites through Great Expectations over pandas.

    .venv/bin/python bench/bench_quality.py [warehouse_url] [--size tiny] [--replicate N] [--ge-max-rows M]

Without a URL a county of `--size` (synthetic/sizes.yaml; default tiny) is generated and ingested in a temp dir. A
DuckDB warehouse given by URL is copied to a temp dir first (the benchmark writes quality results and may replicate
rows; the original stays as it was). `--replicate N` scales the data to N× its rows *inside the warehouse* before
timing: every table the data sets read (raw, ops, mpi, cdr) gets N-1 copies of its rows under copied institutions
(org code + "~k", other text key columns + "~k"), so each copy is an institution with exactly the original's records
and defects — the county is not available here and generating it takes hours; the output says the rows were
replicated. Counts then are N× the original's, which the run checks.

Prints, in one run: rows and rules per data set, the in-warehouse time for all rules (DuckDB/PostgreSQL SQL, one scan
per data set, problem records written) per data set and in total, GE-pandas time for the same suites on the same
relations (data fetched to pandas first; fetch time shown apart), the ratio and whether evaluated/unexpected counts
are identical (mismatches listed), the scoring time, peak RSS and the load average (the machine is shared).
`--ge-max-rows M` runs GE only on data sets of at most M rows (memory: GE-pandas holds a whole relation); the ratio
is then taken over the data sets GE ran on, and the skipped ones are listed.
Targets (issue 7, 2 cores): all rules ≤ 2 min on the county; in-warehouse ≥ 20× GE-pandas.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replicate import replicate  # noqa: E402
from quality.catalog import datasets_of, load_catalog  # noqa: E402
from quality.check_types import failure_sql  # noqa: E402
from quality.ge import validate_pandas  # noqa: E402
from quality.relation import relation_sql, table_columns  # noqa: E402
from quality.runner import run_rules  # noqa: E402
from quality.scoring import score_day  # noqa: E402
from warehouse import Warehouse  # noqa: E402

DAY = date(2026, 11, 1)
REL = "q_bench_relation"
SCHEMAS = ("raw", "ops", "mpi", "cdr")


def _county(tmp: Path, size: str) -> str:
    from hutong import stages
    from hutong.config import DEFAULT_CONFIG
    from tests.conftest import write_config

    every = tuple(i["short"] for i in yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))["institutions"])
    shorts = ("RMYY", "RXYY", "QLWSY") if size == "tiny" else every  # tiny: three institutions, else the county's
    config = write_config(tmp, f"duckdb:///{tmp / 'wh.duckdb'}", shorts=shorts, synthetic_size=size)
    stages.synth(config, size, 7)
    stages.ingest(config)
    return config.warehouse_url


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu() -> float:
    """CPU seconds of this process, all threads (less sensitive to the shared machine's load than wall time)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(url: str, copies: int = 1, ge_max_rows: int | None = None) -> None:
    rules = load_catalog()
    print(f"start            {_load()}")
    with Warehouse(url) as wh:
        if copies > 1:
            t0 = time.perf_counter()
            scaled = replicate(wh, copies, SCHEMAS)
            wh.execute("CHECKPOINT")  # not inside the timed run: DuckDB would write the copies out at its first commit
            took = time.perf_counter() - t0
            print(f"replicated       {copies}× in {took:.1f} s: {sum(scaled.values()):,} rows in {len(scaled)} tables "
                  "(ROWS REPLICATED under copied institutions, not a generated county)")  # fmt: skip
        orgs = sorted({str(o) for (o,) in wh.query("SELECT DISTINCT org_code FROM ops.ingest_batch")})  # copies too
        types = {o: "二级医院" if o.startswith("5") or o.endswith("C") else "乡镇卫生院" for o in orgs}
        try:
            from hutong.config import load_config

            named = {i.org_code: i.type for i in load_config().institutions}
            types |= {o: named[o.split("~")[0]] for o in orgs if o.split("~")[0] in named}
        except Exception:  # the shipped county names the types; a foreign warehouse keeps the guess
            pass
        timings: dict[str, float] = {}
        t0, c0 = time.perf_counter(), _cpu()
        run_rules(wh, orgs, DAY, timings=timings)
        sql_s, sql_cpu = time.perf_counter() - t0, _cpu() - c0
        print(f"rules run        {_load()}")
        t0 = time.perf_counter()
        scored = score_day(wh, DAY, types)
        score_s = time.perf_counter() - t0
        ours = {
            r: (int(e), int(f))
            for r, e, f in wh.query(
                "SELECT rule_id, sum(evaluated), sum(failed) FROM quality.check_result WHERE run_id = ? "
                "AND status = 'evaluated' GROUP BY rule_id",
                [f"q{DAY.isoformat()}"],
            )
        }
        sums = dict.fromkeys(("run", "build", "eval", "fetch", "ge"), 0.0)
        cpus = dict.fromkeys(("eval", "fetch", "ge"), 0.0)
        rows = same = compared = 0
        mismatches: list[str] = []
        skipped: list[str] = []
        print(f"{'data set':26s} {'rows':>11s} {'rules':>5s} {'run s':>7s} {'eval s':>7s} {'GE s':>7s} "
              f"{'GE/run':>7s} {'GE/eval':>8s}")  # fmt: skip
        for name, group in datasets_of(rules).items():
            ds = group[0].dataset
            if not any(r.id in ours for r in group):  # not evaluated (no table or no rows): no finding either side
                continue
            sql, compiled = relation_sql(ds, group, table_columns(wh, ds.table), wh.dialect)
            # the relation GE reads, materialised once: the SQL rules and GE then judge exactly the same rows
            wh.execute(f"DROP TABLE IF EXISTS {REL}")
            t0 = time.perf_counter()
            wh.execute(f"CREATE TEMP TABLE {REL} AS {sql}")
            build = time.perf_counter() - t0
            fails = ", ".join(
                f"count(*) FILTER (WHERE coalesce({failure_sql(compiled[r.id], wh.dialect)}, false))" for r in group
            )
            t0, c0 = time.perf_counter(), _cpu()
            counted = wh.query(f"SELECT count(*), {fails} FROM {REL}")[0]
            evaluated, c_eval = time.perf_counter() - t0, _cpu() - c0
            for r, failed in zip(group, counted[1:], strict=True):
                if (int(counted[0]), int(failed)) != ours.get(r.id):
                    mismatches.append(f"{r.id}: SQL over the relation {counted[0]}/{failed} vs run {ours.get(r.id)}")
            count = int(counted[0])
            if ge_max_rows is not None and count > ge_max_rows:
                skipped.append(f"{name} ({count:,} rows)")
                print(
                    f"{name:26s} {count:>11,} {len(group):>5} {timings[name]:>7.2f} {evaluated:>7.2f} {'skipped':>7s}"
                )
                continue
            t0, c0 = time.perf_counter(), _cpu()
            frame = wh.query_df(f"SELECT * FROM {REL}").to_pandas()
            fetched, c_fetch = time.perf_counter() - t0, _cpu() - c0
            t0, c0 = time.perf_counter(), _cpu()
            outcomes = validate_pandas(frame, group)
            took, c_ge = time.perf_counter() - t0, _cpu() - c0
            for key, value in (("run", timings[name]), ("build", build), ("eval", evaluated), ("fetch", fetched),
                               ("ge", took)):  # fmt: skip
                sums[key] += value
            for key, value in (("eval", c_eval), ("fetch", c_fetch), ("ge", c_ge)):
                cpus[key] += value
            rows += len(frame)
            compared += len(outcomes)
            for o in outcomes:
                if (o.evaluated, o.failed) == ours.get(o.rule_id):
                    same += 1
                else:
                    mismatches.append(f"{o.rule_id}: GE {o.evaluated}/{o.failed} vs SQL {ours.get(o.rule_id)}")
            print(f"{name:26s} {len(frame):>11,} {len(group):>5} {timings[name]:>7.2f} {evaluated:>7.2f} {took:>7.2f} "
                  f"{took / timings[name]:>6.1f}× {took / max(evaluated, 1e-6):>7.1f}×")  # fmt: skip
            del frame
        wh.execute(f"DROP TABLE IF EXISTS {REL}")
        print(f"GE done          {_load()}")
    print()
    scaled_note = f", rows replicated {copies}× under copied institutions" if copies > 1 else ""
    print(f"warehouse        {url.split('?')[0]}  ({len(orgs)} institutions{scaled_note})")
    print(f"rules            {len(rules)} in {len(datasets_of(rules))} data sets ({rows:,} rows where GE ran)")
    print(f"in-warehouse     {sql_s:8.2f} s  all rules, problem records written ({sql_cpu:.2f} s CPU; target ≤ 120 s "
          "at county size)")  # fmt: skip
    print(f"GE pandas        {sums['ge']:8.2f} s  validation ({cpus['ge']:.2f} s CPU) of the relations, built in the "
          f"warehouse in {sums['build']:.2f} s, fetched in {sums['fetch']:.2f} s "
          f"({cpus['fetch']:.2f} s CPU)")  # fmt: skip
    print(f"SQL over them    {sums['eval']:8.2f} s  the same expectations as SQL over the same materialised relations "
          f"({cpus['eval']:.2f} s CPU)")  # fmt: skip
    run = sums["run"] or float("nan")
    print(f"ratio            {sums['ge'] / run:8.1f} ×  GE-pandas validation / in-warehouse run, same data sets "
          f"({sums['run']:.2f} s in-warehouse; target ≥ 20×)")  # fmt: skip
    whole = sums["build"] + sums["fetch"] + sums["ge"]
    print(f"ratio end-to-end {whole / run:8.1f} ×  (relation built + fetched + GE validation) / in-warehouse run")
    print(f"ratio like4like  {sums['ge'] / (sums['eval'] or float('nan')):8.1f} ×  GE validation / SQL, both over the "
          f"same materialised relations ({cpus['ge'] / (cpus['eval'] or float('nan')):.1f} × in CPU)")  # fmt: skip
    if skipped:
        print(f"GE skipped       {', '.join(skipped)} (over --ge-max-rows)")
    print(f"identical counts {same}/{compared} expectations (evaluated and unexpected)")
    for line in mismatches:
        print(f"  differs        {line}")
    print(f"scoring          {score_s:8.2f} s  ({scored:,} score rows, day → year)")
    print(f"peak RSS         {_rss_mb():8.0f} MB")
    print(f"end              {_load()}")


def _copy(url: str, tmp: Path) -> str:
    """A DuckDB warehouse is benchmarked on a copy; PostgreSQL in place (no replication there)."""
    if not url.startswith("duckdb:///"):
        return url
    source = Path(url.removeprefix("duckdb:///").split("?")[0])
    target = tmp / source.name
    shutil.copyfile(source, target)
    return f"duckdb:///{target}"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="warehouse URL (default: generate a county of --size)")
    parser.add_argument("--size", default="tiny", help="synthetic size when no URL is given (default tiny)")
    parser.add_argument("--replicate", type=int, default=1, help="scale the rows N× inside the warehouse (DuckDB)")
    parser.add_argument("--ge-max-rows", type=int, default=None, help="GE only on data sets up to this many rows")
    args = parser.parse_args()
    base = Path(os.environ.get("HUTONG_BENCH_TMP", tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        url = _copy(args.url, Path(tmp)) if args.url else _county(Path(tmp), args.size)
        if args.replicate > 1 and not url.startswith("duckdb:///"):
            parser.error("--replicate works on a DuckDB copy only")
        main(url, args.replicate, args.ge_max_rows)
