"""Benchmark: dbt (terminology seeds → staging → cdr → health record → marts, with every data test) on a county.

    .venv/bin/python bench/bench_dbt.py [size] [--workdir DIR] [--warehouse DAY0.duckdb [--next-day DAY1.duckdb]]
                                        [--replicate N] [--pg] [--pg-url URL] [--pg-ingest]

Prints, on DuckDB: the full build (`dbt build`: seeds, models, tests) and the daily increment (next day's raw rows,
incremental `dbt run` of the models, then `dbt test` of the models — the tests of an incremental model check its
last load, the seeds' tests ran with the seeds): wall and CPU seconds (the child's user + system time, less
sensitive than wall time to the shared machine's load), peak RSS of each step's process and the load average;
the slowest models of the full build (dbt's run_results.json); the same run with `--full-refresh` as the baseline
the incremental run is compared with. The daily increment is the dbt part (run + tests); its landing is apart.

Sources: by default a county of `size` is generated and ingested in the work dir. `--warehouse` copies a warehouse
that already holds raw + ops + mpi (e.g. bench_feeds' day0.duckdb; never written to) and drops what dbt built there,
so the build is a full one; `--next-day` then takes the next day's raw rows (landed after the copy's newest
`_ingested_at` per table) and MPI cross-references from a later snapshot instead of generating and ingesting them.
`--replicate N` scales raw, ops and mpi N× inside the copy (bench/replicate.py: copied institutions, org code + "~k")
— the county takes over an hour to generate here; the output says the rows were replicated; the next day's rows
are replicated the same way.
With --pg the same sources are put into a fresh PostgreSQL database — copied from the DuckDB warehouse with COPY
(bench/pg_copy.py), or ingested again with --pg-ingest — and the full build is timed there.
Targets (issue 6, 2 cores): county full build ≤ 8 min, daily increment ≤ 60 s. Figures only, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_ADMIN = os.environ.get("HUTONG_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DBT_SCHEMAS = ("staging", "cdr", "health_record", "marts", "terminology")
LANDED = ("raw", "ops", "mpi")


class Step(NamedTuple):
    wall: float
    cpu: float
    peak_mib: float


def _config(workdir: Path, url: str, size: str, name: str, data_dir: Path | None = None) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(data_dir or workdir / "data")
    raw["warehouse"]["url"] = url
    raw["synthetic"] = {"size": size, "seed": 20261124}
    path = workdir / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _run(command: list[str], env: dict[str, str]) -> Step:
    """Run a command; wall and CPU seconds and peak RSS (MiB) from the kernel's accounting of that child."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail = [line for line in proc.stdout][-12:]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{''.join(tail)}")
    return Step(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def _hutong(config: Path, *args: str) -> Step:
    env = {**os.environ, "HUTONG_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    return _run([str(Path(sys.executable).parent / "hutong"), *args], env)


def _target(config: Path) -> Path:
    return config.parent / f"dbt_target_{config.stem}"


def _dbt(config: Path, *args: str) -> Step:
    from hutong.config import load_config
    from hutong.dbt_runner import DBT_PROJECT_DIR, dbt_env, dbt_executable

    url = load_config(config).warehouse_url
    env = {**os.environ, **dbt_env(url, _target(config)), "PYTHONPATH": str(ROOT)}
    project = os.environ.get("HUTONG_BENCH_DBT_PROJECT", str(DBT_PROJECT_DIR))
    env["DBT_PROFILES_DIR"] = project
    command = [dbt_executable(), *args, "--project-dir", project, "--profiles-dir", project]
    return _run(command, env)


def _slowest(config: Path, top: int = 12, step: str = "") -> str:
    """The slowest nodes of the last dbt invocation (run_results.json, kept as run_results_<step>.json)."""
    path = _target(config) / "run_results.json"
    if step:
        shutil.copyfile(path, path.with_name(f"run_results_{step}.json"))
    results = json.loads(path.read_text(encoding="utf-8"))["results"]
    nodes = sorted(results, key=lambda r: -r["execution_time"])[:top]
    return "\n".join(f"      {r['execution_time']:7.1f} s  {r['unique_id'].split('.', 2)[-1]}" for r in nodes)


def _rows(config: Path) -> dict[str, int]:
    from hutong.config import load_config
    from warehouse import Warehouse

    with Warehouse(load_config(config).warehouse_url, read_only=True) as wh:
        return {t: wh.count(f"cdr.{t}") for t in ("cdr__encounter", "cdr__order", "cdr__fee", "cdr__lab_result")}


def _line(label: str, step: Step, extra: str = "") -> None:
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"  {label:40s} {step.wall:7.1f} s  CPU {step.cpu:7.1f} s  peak RSS {step.peak_mib:6.0f} MiB  "
          f"load {load}  {extra}", flush=True)  # fmt: skip


def _timed(label: str, work: Callable[[], object]) -> None:
    started = time.perf_counter()
    out = work()
    print(f"  {label:40s} {time.perf_counter() - started:7.1f} s  {out or ''}", flush=True)


def _prepare_copy(source: Path | None, url: str) -> str:
    """Copy a built warehouse (None: the work dir's as it is) and drop what dbt built there (the build timed next
    is a full one)."""
    from warehouse import Warehouse

    if source is not None:
        shutil.copyfile(source, Path(url.removeprefix("duckdb:///")))
    with Warehouse(url) as wh:
        for schema in DBT_SCHEMAS:
            wh.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        wh.execute("DROP TABLE IF EXISTS ops.dbt_load")
        wh.execute("CHECKPOINT")
        raw = sum(wh.count(f"raw.{t}") for t in wh.tables("raw"))
    return f"{raw:,} raw rows"


def _replicate(url: str, copies: int, since: dict[str, object] | None = None) -> str:
    from bench.replicate import replicate
    from warehouse import Warehouse

    with Warehouse(url) as wh:
        rows = replicate(wh, copies, LANDED, since)
        wh.execute("CHECKPOINT")  # not inside the timed build
        raw = sum(wh.count(f"raw.{t}") for t in wh.tables("raw"))
    return f"ROWS REPLICATED {copies}× under copied institutions: {raw:,} raw rows ({len(rows)} tables copied)"


def _land_next_day(url: str, later: Path, copies: int) -> str:
    """The next day's raw rows and the MPI's cross-references from a later snapshot of the same county."""
    from bench.replicate import landing_marks
    from warehouse import Warehouse

    with Warehouse(url) as wh:
        marks = landing_marks(wh, ("raw",))
        originals = {t: wh.scalar(f"SELECT max(_ingested_at) FROM {t} WHERE _org_code NOT LIKE '%~%'") for t in marks}
        columns = {t: ", ".join(wh.columns(t)) for t in [*marks, "mpi.xref"]}  # before ATTACH: names repeat after
        wh.execute(f"ATTACH '{later}' AS later (READ_ONLY)")
        there = {f"{s}.{t}" for s, t in wh.query("SELECT schema_name, table_name FROM duckdb_tables() "
                                                  "WHERE database_name = 'later'")}  # fmt: skip
        added = 0
        for table, mark in originals.items():
            if table not in there:
                continue
            where = "WHERE _ingested_at > ?" if mark is not None else ""
            before = wh.count(table)
            names = columns[table]
            wh.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM later.{table} {where}",
                       [mark] if mark is not None else None)  # fmt: skip
            added += wh.count(table) - before
        names = columns["mpi.xref"]
        wh.execute("DELETE FROM mpi.xref WHERE org_code NOT LIKE '%~%'")
        wh.execute(f"INSERT INTO mpi.xref ({names}) SELECT {names} FROM later.mpi.xref")
        wh.execute("DETACH later")
        if copies > 1:
            from bench.replicate import replicate

            replicate(wh, copies, ("raw",), marks)
            wh.execute("DELETE FROM mpi.xref WHERE org_code LIKE '%~%'")
            replicate(wh, copies, ("mpi",), {"mpi.xref": None})
        wh.execute("CHECKPOINT")
    note = f", replicated {copies}×" if copies > 1 else ""
    return f"{added:,} raw rows of the next day{note} (from {later.name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", default="medium")
    parser.add_argument("--workdir", default=None, help="work here (default: a new folder under /tmp)")
    parser.add_argument("--warehouse", type=Path, help="copy this DuckDB warehouse (raw + ops + mpi landed)")
    parser.add_argument("--next-day", type=Path, help="with --warehouse: a later snapshot to take the next day from")
    parser.add_argument("--replicate", type=int, default=1, help="scale raw/ops/mpi N× in the copy")
    parser.add_argument("--no-increment", action="store_true", help="full build only")
    parser.add_argument("--no-baseline", action="store_true", help="skip the --full-refresh baseline run")
    parser.add_argument("--rebuild", action="store_true", help="full build again on the work dir's warehouse")
    parser.add_argument("--increment-only", action="store_true", help="next day only (work dir built)")
    parser.add_argument("--pg", action="store_true", help="also time the full build on PostgreSQL")
    parser.add_argument("--pg-url", default=None, help="with --pg: an existing database to load into (kept)")
    parser.add_argument("--pg-only", action="store_true", help="with --warehouse: the PostgreSQL build only")
    parser.add_argument("--project-dir", type=Path, help="another copy of dbt_project/ (a same-run baseline)")
    parser.add_argument("--pg-ingest", action="store_true", help="with --pg: ingest the sources again (no COPY)")
    args = parser.parse_args()
    workdir = Path(args.workdir or f"/tmp/hutong_bench_dbt_{args.size}")
    workdir.mkdir(parents=True, exist_ok=True)
    url = f"duckdb:///{workdir}/warehouse.duckdb"
    duck = _config(workdir, url, args.size, "county.yaml")
    print(f"bench_dbt: size {args.size}, work dir {workdir}, load average {os.getloadavg()}", flush=True)
    scale = f" (rows replicated {args.replicate}×)" if args.replicate > 1 else ""
    if args.project_dir:
        os.environ["HUTONG_BENCH_DBT_PROJECT"] = str(args.project_dir.resolve())
        print(f"  dbt project: {args.project_dir.resolve()}", flush=True)
    if args.pg_only:
        _postgres(args, workdir, duck, url)
        return
    full = None
    if not args.increment_only:
        if args.rebuild:
            _timed("dbt schemas dropped in the work dir's warehouse", lambda: _prepare_copy(None, url))
            scale += " (replicated rows of the earlier run)" if args.replicate > 1 else ""
        elif args.warehouse:
            _timed(f"copy of {args.warehouse.name}", lambda: _prepare_copy(args.warehouse, url))
        else:
            _line("synthetic county (once)", _hutong(duck, "synth"))
            _line("ingest (all sources)", _hutong(duck, "ingest"))
        if args.replicate > 1 and not args.rebuild:
            _timed("replicate (not timed below)", lambda: _replicate(url, args.replicate))
        full = _dbt(duck, "build")
        _line(f"DuckDB full build (dbt build){scale}", full, str(_rows(duck)))
        print(_slowest(duck, step="full"), flush=True)
    if not args.no_increment and (args.next_day or not args.warehouse):
        if args.next_day:
            _timed("next day: landed from snapshot", lambda: _land_next_day(url, args.next_day, args.replicate))
        else:
            _line("next day: synthetic increment", _hutong(duck, "synth", "--next-day"))
            _line("next day: ingest", _hutong(duck, "ingest"))
        build = _dbt(duck, "run", "--exclude", "resource_type:seed")
        _line("next day: incremental dbt run (models)", build, str(_rows(duck)))
        print(_slowest(duck, 6, "increment_run"), flush=True)
        tests = _dbt(duck, "test", "--exclude", "tag:seed_data")
        _line("next day: dbt test (models' data tests)", tests)
        print(_slowest(duck, 4, "increment_test"), flush=True)
        print(f"  DAILY INCREMENT (dbt: incremental run + tests) {build.wall + tests.wall:6.1f} s "
              f"(CPU {build.cpu + tests.cpu:.1f} s){scale}  target ≤ 60 s (landing apart)")  # fmt: skip
        if not args.no_baseline:
            refresh = _dbt(duck, "run", "--exclude", "resource_type:seed", "--full-refresh")
            ratio = f"incremental/full = {build.wall / refresh.wall:.2f}"
            _line("baseline: same run with --full-refresh", refresh, ratio)
    if full:
        print(f"  DuckDB FULL BUILD {full.wall:.1f} s (CPU {full.cpu:.1f} s, peak RSS {full.peak_mib:.0f} MiB){scale} "
              f"(county target ≤ 480 s); load average {os.getloadavg()}")  # fmt: skip
    if args.pg:
        _postgres(args, workdir, duck, url)


def _postgres(args: argparse.Namespace, workdir: Path, duck: Path, url: str) -> None:
    import psycopg

    from bench.pg_copy import copy_to_postgres
    from hutong.config import load_config

    name = f"hutong_bench_{uuid.uuid4().hex[:8]}"
    if not args.pg_url:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    pg_url = args.pg_url or f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        data_dir = load_config(duck).data_dir
        pg = _config(workdir, pg_url, args.size, "county_pg.yaml", data_dir)
        if args.pg_ingest:
            _line("PostgreSQL: ingest (all sources)", _hutong(pg, "ingest"))
        else:
            source = args.warehouse if args.warehouse and args.replicate == 1 else Path(url.removeprefix("duckdb:///"))
            copied = lambda: _copy_summary(copy_to_postgres(source, pg_url, workdir))  # noqa: E731
            _timed("PostgreSQL: raw/ops/mpi copied (COPY)", copied)
        pg_full = _dbt(pg, "build")
        _line("PostgreSQL full build (dbt build)", pg_full)
        print(_slowest(pg), flush=True)
        print(f"  PostgreSQL FULL BUILD {pg_full.wall:.1f} s (CPU of dbt {pg_full.cpu:.1f} s; the server's work is "
              f"not in it); load average {os.getloadavg()}")  # fmt: skip
    finally:
        if not args.pg_url:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _copy_summary(copied: dict[str, int]) -> str:
    return f"{sum(copied.values()):,} rows in {len(copied)} tables"


if __name__ == "__main__":
    main()
