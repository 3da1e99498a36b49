"""Benchmark: dbt (terminology seeds → staging → cdr, with every data test) on a synthetic county.

    .venv/bin/python bench/bench_dbt.py [size] [--pg [--pg-url URL]] [--workdir DIR]   (default: medium, DuckDB only)

Prints, on DuckDB: the full build (`dbt build`: seeds, models, tests) and the daily increment (synthetic
`--next-day`, ingest, incremental `dbt run` of the models, then `dbt test` of the models — the tests of an
incremental model check its last load, the seeds' tests ran with the seeds) wall times and peak RSS of each
step's process, and the same run with `--full-refresh` as the baseline the incremental run is compared with.
The daily increment is the dbt part (run + tests); the ingest is printed apart.
With --pg the same sources are ingested into a fresh PostgreSQL database and the full build is timed there.
Targets (issue 6, 2 cores): county full build ≤ 8 min, daily increment ≤ 60 s. Figures only, never asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("HUTONG_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def _config(workdir: Path, url: str, size: str, name: str) -> Path:
    raw = yaml.safe_load((ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(workdir / "data")
    raw["warehouse"]["url"] = url
    raw["synthetic"] = {"size": size, "seed": 20261124}
    path = workdir / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Run a command; its wall seconds and peak RSS (MiB) from the kernel's accounting of that child."""
    started = time.perf_counter()
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    tail = [line for line in proc.stdout][-12:]
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(command[:3])} failed:\n{''.join(tail)}")
    return seconds, usage.ru_maxrss / 1024


def _hutong(config: Path, *args: str) -> tuple[float, float]:
    env = {**os.environ, "HUTONG_CONFIG": str(config), "PYTHONPATH": str(ROOT)}
    return _run([str(Path(sys.executable).parent / "hutong"), *args], env)


def _dbt(config: Path, *args: str) -> tuple[float, float]:
    from hutong.config import load_config
    from hutong.dbt_runner import DBT_PROJECT_DIR, dbt_env, dbt_executable

    url = load_config(config).warehouse_url
    target = config.parent / f"dbt_target_{config.stem}"
    env = {**os.environ, **dbt_env(url, target), "PYTHONPATH": str(ROOT)}
    command = [dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    return _run(command, env)


def _rows(config: Path) -> dict[str, int]:
    from hutong.config import load_config
    from warehouse import Warehouse

    with Warehouse(load_config(config).warehouse_url, read_only=True) as wh:
        return {t: wh.count(f"cdr.{t}") for t in ("cdr__encounter", "cdr__order", "cdr__fee", "cdr__lab_result")}


def _line(label: str, seconds: float, peak: float, extra: str = "") -> None:
    load = os.getloadavg()[0]
    print(f"  {label:38s} {seconds:8.1f} s   peak RSS {peak:7.0f} MiB  load {load:5.2f}  {extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", default="medium")
    parser.add_argument("--pg", action="store_true", help="also time the full build on PostgreSQL")
    parser.add_argument("--workdir", default=None, help="keep the county here (default: a new folder under /tmp)")
    parser.add_argument("--pg-url", default=None, help="with --pg: an existing database to ingest into (kept)")
    args = parser.parse_args()
    workdir = Path(args.workdir or f"/tmp/hutong_bench_dbt_{args.size}")
    workdir.mkdir(parents=True, exist_ok=True)
    duck = _config(workdir, f"duckdb:///{workdir}/warehouse.duckdb", args.size, "county.yaml")
    print(f"bench_dbt: size {args.size}, work dir {workdir}, load average {os.getloadavg()[0]:.2f}", flush=True)
    _line("synthetic county (once)", *_hutong(duck, "synth"))
    _line("ingest (all sources)", *_hutong(duck, "ingest"))
    full = _dbt(duck, "build")
    _line("DuckDB full build (dbt build)", *full, str(_rows(duck)))
    synth = _hutong(duck, "synth", "--next-day")
    _line("next day: synthetic increment", *synth)
    ingest = _hutong(duck, "ingest")
    _line("next day: ingest", *ingest)
    build = _dbt(duck, "run", "--exclude", "resource_type:seed")
    _line("next day: incremental dbt run (models)", *build, str(_rows(duck)))
    tests = _dbt(duck, "test", "--exclude", "tag:seed_data")
    _line("next day: dbt test (models' data tests)", *tests)
    daily = build[0] + tests[0]
    print(f"  DAILY INCREMENT (dbt: incremental run + tests) {daily:6.1f} s  target ≤ 60 s (ingest apart)")
    refresh = _dbt(duck, "run", "--exclude", "resource_type:seed", "--full-refresh")
    _line("baseline: same run with --full-refresh", *refresh, f"incremental/full = {build[0] / refresh[0]:.2f}")
    print(f"  DuckDB FULL BUILD {full[0]:.1f} s (county target ≤ 480 s); load average {os.getloadavg()[0]:.2f}")
    if args.pg:
        import psycopg

        name = f"hutong_bench_{uuid.uuid4().hex[:8]}"
        if not args.pg_url:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
        try:
            pg = _config(workdir, args.pg_url or f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", args.size, "county_pg.yaml")
            _line("PostgreSQL: ingest (all sources)", *_hutong(pg, "ingest"))
            pg_full = _dbt(pg, "build")
            _line("PostgreSQL full build (dbt build)", *pg_full)
            print(f"  PostgreSQL FULL BUILD {pg_full[0]:.1f} s; load average {os.getloadavg()[0]:.2f}")
        finally:
            if not args.pg_url:
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
