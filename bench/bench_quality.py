"""Benchmark: every catalog rule in the warehouse vs the same suites through Great Expectations over pandas.

    .venv/bin/python bench/bench_quality.py [warehouse_url] [--size tiny] [--replicate N] [--ge-max-rows M]
        [--ge-chunk-rows C] [--day-share F]

Without a URL a county of `--size` (synthetic/sizes.yaml; default tiny) is generated and ingested in a temp dir. A
DuckDB warehouse given by URL is copied to a temp dir first (the benchmark writes quality results and may replicate
rows; the original stays as it was). `--replicate N` scales the data to N× its rows *inside the warehouse* before
timing: every table the data sets read (raw, ops, mpi, cdr) gets N-1 copies of its rows under copied institutions
(org code + "~k", other text key columns + "~k"), so each copy is an institution with exactly the original's records
and defects — the output says the rows were replicated. Counts then are N× the original's.

The run, as the platform does it each day: a first run builds each raw data set's current-version table from raw
(timed apart: once per warehouse); then a day's delivery lands (`--day-share` of the current rows of every raw data
set again, in new batches, payload unchanged) and the timed run — the next day's, as the daily job runs (T+1) —
merges those batches and evaluates every rule over every record — its counts must equal the first run's (merge ==
rebuild). Then, per data set, the same suite through GE over pandas on the same relation: built in the warehouse
from the same tables, fetched, validated (each part shown). Prints the main ratio (GE-pandas path over every data
set / the whole in-warehouse run), the ratio with the merge counted on both sides (GE's relations are built from the
merged current-version tables too: (merge + build + fetch + GE) / run), the validation-only and like-for-like
ratios, whether GE's evaluated/unexpected counts are identical (mismatches listed), the scoring time, peak RSS and
the load average (the machine is shared). GE validates each relation `--ge-chunk-rows` rows at a time (default
2,000,000; the counts of the suites' row-local expectations add up over chunks), so memory stays bounded and GE runs
on every data set at any size. `--ge-max-rows M` runs GE only on data sets of at most M rows (quick looks); ratios
are then taken over the data sets GE ran on, and the skipped ones are listed.
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
from datetime import date, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replicate import replicate  # noqa: E402
from quality.catalog import datasets_of, load_catalog  # noqa: E402
from quality.check_types import failure_sql  # noqa: E402
from quality.current import current_table  # noqa: E402
from quality.ge import GeOutcome, validate_pandas  # noqa: E402
from quality.relation import relation_sql, rule_columns, table_columns  # noqa: E402
from quality.runner import run_rules  # noqa: E402
from quality.scoring import score_day  # noqa: E402
from warehouse import Warehouse  # noqa: E402

DAY = date(2026, 11, 1)  # the first run's day
NEXT = DAY + timedelta(days=1)  # the timed run's: the day after, once the day's delivery has landed
REL = "q_bench_relation"
GE_BUILD_LIMIT = "4GB"  # the baseline's relation build only, when the warehouse's limit is not enough
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


def increment(wh: Warehouse, share: float, at: datetime) -> int:
    """A day's delivery: `share` of every raw data set's current rows (chosen by a hash of the key) land again as new
    versions in one new batch per table (later ingest time, op U, new content hash, payload unchanged). The next run
    must merge them; its counts must equal the run before. Returns the rows appended."""
    added = 0
    for group in datasets_of(load_catalog()).values():
        ds = group[0].dataset
        current = current_table(ds)
        if ds.kind != "raw" or not wh.table_exists(current):
            continue
        names = [c for c, _ in table_columns(wh, ds.table)]
        kept = set(wh.columns(current))  # the whole-record columns stay in raw only: the new versions carry none
        new = {"_batch_id": f"'bench-day-{ds.name}'", "_ingested_at": "CAST(? AS TIMESTAMP)", "_op": "'U'",
               "_record_hash": "md5(_record_hash || 'bench-day')"}  # fmt: skip
        select = ", ".join(f"{new[c]} AS {c}" if c in new else c if c in kept else f"NULL AS {c}" for c in names)
        before = int(wh.scalar(f"SELECT count(*) FROM {ds.table}"))
        wh.execute(
            f"INSERT INTO {ds.table} ({', '.join(names)}) SELECT {select} FROM {current} "
            f"WHERE hash({ds.org_column} || {ds.key}) % 10000 < {int(share * 10000)}",
            [at],
        )
        added += int(wh.scalar(f"SELECT count(*) FROM {ds.table}")) - before
    return added


def _build_relation(wh: Warehouse, sql: str) -> str:
    """Materialise GE's relation as temp table REL. When DuckDB runs out of memory at the warehouse's limit (the
    widest county relations), retry with GE_BUILD_LIMIT and restore the limit; returns what was done ("" normally).
    Only the baseline's materialisation gets more: the in-warehouse run has already run at the warehouse's limit."""
    try:
        wh.execute(f"CREATE TEMP TABLE {REL} AS {sql}")
        return ""
    except Exception as exc:  # duckdb.OutOfMemoryException; PostgreSQL has no such limit
        if wh.dialect != "duckdb" or "Out of Memory" not in str(exc):
            raise
    limit = wh.scalar("SELECT current_setting('memory_limit')")
    wh.execute(f"DROP TABLE IF EXISTS {REL}")
    wh.execute(f"SET memory_limit = '{GE_BUILD_LIMIT}'")
    try:
        wh.execute(f"CREATE TEMP TABLE {REL} AS {sql}")
    finally:
        wh.execute(f"SET memory_limit = '{limit}'")
    return f"out of memory at {limit}, built with {GE_BUILD_LIMIT}"


def _results(wh: Warehouse, day: date) -> dict[str, tuple[int, int]]:
    return {
        r: (int(e), int(f))
        for r, e, f in wh.query(
            "SELECT rule_id, sum(evaluated), sum(failed) FROM quality.check_result WHERE run_id = ? "
            "AND status = 'evaluated' GROUP BY rule_id",
            [f"q{day.isoformat()}"],
        )
    }


def _problems(wh: Warehouse, day: date) -> int:
    return int(wh.scalar("SELECT count(*) FROM quality.problem_record WHERE run_id = ?", [f"q{day.isoformat()}"]))


def _ge_in_chunks(
    wh: Warehouse, group: list, chunk_rows: int
) -> tuple[list[GeOutcome], float, float, float, float, int]:
    """GE over pandas on the materialised relation, `chunk_rows` rows at a time (memory stays bounded whatever the
    size: every expectation of the suites is row-local — not_null, in_set, match_regex, between over columns the
    relation derived —, so element and unexpected counts add up over chunks). Returns the summed outcomes, fetch
    seconds (wall, CPU), GE seconds (wall, CPU) and the rows fetched."""
    totals: dict[str, list[int]] = {}
    fetched = c_fetch = took = c_ge = 0.0
    rows = 0
    batches = wh.iter_batches(f"SELECT * FROM {REL}", size=chunk_rows)
    while True:
        t0, c0 = time.perf_counter(), _cpu()
        batch = next(batches, None)
        frame = batch.to_pandas() if batch is not None else None
        fetched, c_fetch = fetched + time.perf_counter() - t0, c_fetch + _cpu() - c0
        if frame is None:
            break
        t0, c0 = time.perf_counter(), _cpu()
        for o in validate_pandas(frame, group):
            seen = totals.setdefault(o.rule_id, [0, 0])
            seen[0], seen[1] = seen[0] + o.evaluated, seen[1] + o.failed
        took, c_ge = took + time.perf_counter() - t0, c_ge + _cpu() - c0
        rows += len(frame)
        del frame, batch
    outcomes = [GeOutcome(r, e, f) for r, (e, f) in totals.items()]
    return outcomes, fetched, c_fetch, took, c_ge, rows


def main(
    url: str, copies: int = 1, ge_max_rows: int | None = None, share: float = 0.02, ge_chunk_rows: int = 2_000_000
) -> None:
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
        # the first run builds every raw data set's current-version table from raw (once; later runs merge new batches)
        t0, c0 = time.perf_counter(), _cpu()
        run_rules(wh, orgs, DAY)
        first_s, first_cpu = time.perf_counter() - t0, _cpu() - c0
        first = _results(wh, DAY)
        first_problems = _problems(wh, DAY)
        wh.execute("CHECKPOINT")
        print(f"first run        {first_s:8.2f} s  ({first_cpu:.2f} s CPU)  {_load()}", flush=True)
        # the day's delivery lands after everything landed so far (as a real day's batches do)
        landed = [wh.scalar(f"SELECT max(_ingested_at) FROM {g[0].dataset.table}") for g in datasets_of(rules).values()
                  if g[0].dataset.kind == "raw" and wh.table_exists(current_table(g[0].dataset))]  # fmt: skip
        at = max([t for t in landed if t is not None], default=datetime(2026, 11, 2)) + timedelta(hours=1)
        added = increment(wh, share, at)
        wh.execute("CHECKPOINT")
        timings: dict[str, float] = {}
        t0, c0 = time.perf_counter(), _cpu()
        run_rules(wh, orgs, NEXT, timings=timings)  # the next day's run (T+1), as the daily job does
        sql_s, sql_cpu = time.perf_counter() - t0, _cpu() - c0
        print(f"rules run        {sql_s:8.2f} s  ({sql_cpu:.2f} s CPU)  {_load()}", flush=True)
        t0, c0 = time.perf_counter(), _cpu()
        scored = score_day(wh, NEXT, types)
        score_s, score_cpu = time.perf_counter() - t0, _cpu() - c0
        ours = _results(wh, NEXT)
        problems_after = _problems(wh, NEXT)
        sums = dict.fromkeys(("run", "current", "build", "eval", "fetch", "ge"), 0.0)
        cpus = dict.fromkeys(("eval", "fetch", "ge"), 0.0)
        rows = same = compared = 0
        mismatches: list[str] = []
        skipped: list[str] = []
        raised: list[str] = []  # GE relations that needed more than the warehouse's memory limit to materialise
        print(f"{'data set':26s} {'rows':>11s} {'rules':>5s} {'run s':>7s} {'merge s':>7s} {'build s':>7s} "
              f"{'fetch s':>7s} {'GE s':>7s} {'GE/run':>7s} {'SQL s':>6s}")  # fmt: skip
        for name, group in datasets_of(rules).items():
            ds = group[0].dataset
            if not any(r.id in ours for r in group):  # not evaluated (no table or no rows): no finding either side
                continue
            merge = timings.get(f"{name}.current", 0.0)
            evaluated_rows = max(ours.get(r.id, (0, 0))[0] for r in group)
            if ge_max_rows is not None and evaluated_rows > ge_max_rows:  # neither built nor fetched
                skipped.append(f"{name} ({evaluated_rows:,} rows)")
                print(f"{name:26s} {evaluated_rows:>11,} {len(group):>5} {timings[name]:>7.2f} {merge:>7.2f} "
                      f"{'skipped':>7s}", flush=True)  # fmt: skip
                continue
            current = current_table(ds) if ds.kind == "raw" else ""
            columns = rule_columns(wh, [ds.table])[ds.table]
            sql, compiled = relation_sql(ds, group, columns, wh.dialect, current=current)
            # GE's path: the relation the rules read, built in the warehouse from the same current-version table and
            # materialised once, fetched to pandas, validated; the SQL rules and GE then judge exactly the same rows
            wh.execute(f"DROP TABLE IF EXISTS {REL}")
            t0 = time.perf_counter()
            build_note = _build_relation(wh, sql)
            build = time.perf_counter() - t0
            if build_note:
                raised.append(f"{name} ({build_note})")
            fails = ", ".join(
                f"count(*) FILTER (WHERE coalesce({failure_sql(compiled[r.id], wh.dialect)}, false))" for r in group
            )
            t0, c0 = time.perf_counter(), _cpu()
            counted = wh.query(f"SELECT count(*), {fails} FROM {REL}")[0]
            evaluated, c_eval = time.perf_counter() - t0, _cpu() - c0
            for r, failed in zip(group, counted[1:], strict=True):
                if (int(counted[0]), int(failed)) != ours.get(r.id):
                    mismatches.append(f"{r.id}: SQL over the relation {counted[0]}/{failed} vs run {ours.get(r.id)}")
            outcomes, fetched, c_fetch, took, c_ge, fetched_rows = _ge_in_chunks(wh, group, ge_chunk_rows)
            for key, value in (("run", timings[name]), ("current", merge), ("build", build), ("eval", evaluated),
                               ("fetch", fetched), ("ge", took)):  # fmt: skip
                sums[key] += value
            for key, value in (("eval", c_eval), ("fetch", c_fetch), ("ge", c_ge)):
                cpus[key] += value
            rows += fetched_rows
            compared += len(outcomes)
            for o in outcomes:
                if (o.evaluated, o.failed) == ours.get(o.rule_id):
                    same += 1
                else:
                    mismatches.append(f"{o.rule_id}: GE {o.evaluated}/{o.failed} vs SQL {ours.get(o.rule_id)}")
            ge_path = build + fetched + took
            print(f"{name:26s} {fetched_rows:>11,} {len(group):>5} {timings[name]:>7.2f} {merge:>7.2f} {build:>7.2f} "
                  f"{fetched:>7.2f} {took:>7.2f} {ge_path / timings[name]:>6.1f}× {evaluated:>6.2f}")  # fmt: skip
        wh.execute(f"DROP TABLE IF EXISTS {REL}")
        print(f"GE done          {_load()}")
    print()
    scaled_note = f", rows replicated {copies}× under copied institutions" if copies > 1 else ""
    # every data set compared: the whole run (merges, every rule, problem records, results, the commit) is the
    # denominator; GE on some data sets only (--ge-max-rows): the time the run spent on those data sets
    whole = not skipped
    run = (sql_s if whole else sums["run"]) or float("nan")
    merge_sum = sum(v for k, v in timings.items() if k.endswith(".current"))
    ge_path = sums["build"] + sums["fetch"] + sums["ge"]
    print(f"warehouse        {url.split('?')[0]}  ({len(orgs)} institutions{scaled_note})")
    print(f"rules            {len(rules)} in {len(datasets_of(rules))} data sets ({rows:,} rows where GE ran)")
    print(f"first run        {first_s:8.2f} s  ({first_cpu:.2f} s CPU) all rules for {DAY}, current-version tables "
          "built from raw (once)")  # fmt: skip
    print(f"day's delivery   {added:,} raw rows in new batches ({share:.0%} of current rows re-delivered, unchanged)")
    print(f"in-warehouse     {sql_s:8.2f} s  ({sql_cpu:.2f} s CPU) ALL RULES, the next day's run ({NEXT}) as the "
          f"platform does it, data sets two at a time: new batches merged ({merge_sum:.2f} s summed over data sets, "
          "overlapping), every rule over every record, problem records and results written and committed "
          "(target ≤ 120 s at county size)")  # fmt: skip
    print(f"GE pandas path   {ge_path:8.2f} s  = relations built {sums['build']:.2f} s + fetched {sums['fetch']:.2f} s "
          f"({cpus['fetch']:.2f} s CPU) + GE validation {sums['ge']:.2f} s ({cpus['ge']:.2f} s CPU)")  # fmt: skip
    if whole:
        print(f"RATIO            {ge_path / run:8.1f} ×  GE-pandas path over every data set / the whole in-warehouse "
              f"run ({sql_s:.2f} s; target ≥ 20×)")  # fmt: skip
    else:
        print(f"RATIO            {ge_path / run:8.1f} ×  GE-pandas path / in-warehouse time of the same data sets "
              f"({sums['run']:.2f} s of the {sql_s:.2f} s run; GE skipped some data sets; target ≥ 20×)")  # fmt: skip
        print(
            f"RATIO w/ merge   {(sums['current'] + ge_path) / run:8.1f} ×  (merge + build + fetch + GE) / "
            f"in-warehouse time of those data sets ({sums['current']:.2f} s merging them; merges overlap, two at a "
            "time)"
        )
    print(f"  validation     {sums['ge'] / run:8.1f} ×  GE validation alone / in-warehouse run")
    print(f"  like4like      {sums['ge'] / (sums['eval'] or float('nan')):8.1f} ×  GE validation / SQL, both over the "
          f"same materialised relations ({cpus['ge'] / (cpus['eval'] or float('nan')):.1f} × in CPU)")  # fmt: skip
    if skipped:
        print(f"GE skipped       {', '.join(skipped)} (over --ge-max-rows; the ratio leaves them out on both sides)")
    if raised:
        print(f"GE relations     {'; '.join(raised)} — the baseline's materialisation only, its build time counted")
    print(f"identical counts {same}/{compared} expectations GE vs in-warehouse (evaluated and unexpected)"
          f"{'' if not mismatches else f'; {len(mismatches)} differ'}")  # fmt: skip
    for line in mismatches:
        print(f"  differs        {line}")
    changed = sorted(r for r in set(first) | set(ours) if first.get(r) != ours.get(r))
    print(f"merge == rebuild {'yes' if not changed and first_problems == problems_after else 'NO'}: after the day's "
          f"delivery every rule's counts on {NEXT} equal the first run's on {DAY} ({len(ours)} rules, "
          f"{problems_after:,} problem records"
          f"{'' if not changed else '; differ: ' + ', '.join(changed[:10])})")  # fmt: skip
    print(f"scoring          {score_s:8.2f} s  ({score_cpu:.2f} s CPU; {scored:,} score rows, day → year, "
          f"{len(orgs)} institutions)")  # fmt: skip
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
    parser.add_argument(
        "--day-share", type=float, default=0.02, help="share of current rows delivered again before the timed run"
    )
    parser.add_argument(
        "--ge-chunk-rows", type=int, default=2_000_000, help="rows GE-pandas validates at a time (bounded memory)"
    )
    args = parser.parse_args()
    base = Path(os.environ.get("HUTONG_BENCH_TMP", tempfile.gettempdir()))
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        url = _copy(args.url, Path(tmp)) if args.url else _county(Path(tmp), args.size)
        if args.replicate > 1 and not url.startswith("duckdb:///"):
            parser.error("--replicate works on a DuckDB copy only")
        main(url, args.replicate, args.ge_max_rows, args.day_share, args.ge_chunk_rows)
