"""Benchmark: every catalog rule in the warehouse vs the same suites through Great Expectations over pandas.

    .venv/bin/python bench/bench_quality.py [warehouse_url]     (default: a tiny county generated in a temp dir)

Prints, in one run: rows and rules per data set, the in-warehouse time for all rules (DuckDB/PostgreSQL SQL, one scan
per data set, problem records written), GE-pandas time for the same suites on the same relations (data fetched to
pandas first; fetch time shown apart), the ratio and whether evaluated/unexpected counts are identical, the scoring
time, and peak RSS. Targets (issue 7, 2 cores): all rules ≤ 2 min on the county; in-warehouse ≥ 20× GE-pandas.
"""

from __future__ import annotations

import resource
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from quality.catalog import datasets_of, load_catalog  # noqa: E402
from quality.ge import validate_pandas  # noqa: E402
from quality.relation import relation_sql, table_columns  # noqa: E402
from quality.runner import run_rules  # noqa: E402
from quality.scoring import score_day  # noqa: E402
from warehouse import Warehouse  # noqa: E402

DAY = date(2026, 11, 1)


def _tiny_county(tmp: Path) -> str:
    from hutong import stages
    from tests.conftest import write_config

    config = write_config(tmp, f"duckdb:///{tmp / 'wh.duckdb'}", shorts=("RMYY", "RXYY", "QLWSY"))
    stages.synth(config, "tiny", 7)
    stages.ingest(config)
    return config.warehouse_url


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(url: str) -> None:
    rules = load_catalog()
    with Warehouse(url) as wh:
        orgs = sorted({str(o) for (o,) in wh.query("SELECT DISTINCT org_code FROM ops.ingest_batch")})
        types = {o: "二级医院" if o.startswith("5") or o.endswith("C") else "乡镇卫生院" for o in orgs}
        try:
            from hutong.config import load_config

            types |= {i.org_code: i.type for i in load_config().institutions}
        except Exception:  # the shipped county names the types; a foreign warehouse keeps the guess
            pass
        t0 = time.perf_counter()
        run_rules(wh, orgs, DAY)
        sql_s = time.perf_counter() - t0
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
        fetch_s = ge_s = 0.0
        rows = same = compared = 0
        print(f"{'data set':28s} {'rows':>10s} {'rules':>5s} {'GE s':>8s}")
        for name, group in datasets_of(rules).items():
            ds = group[0].dataset
            if not wh.table_exists(ds.table):
                continue
            sql, _ = relation_sql(ds, group, table_columns(wh, ds.table), wh.dialect)
            t0 = time.perf_counter()
            frame = wh.query_df(sql).to_pandas()
            fetch_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            outcomes = validate_pandas(frame, group)
            took = time.perf_counter() - t0
            ge_s += took
            rows += len(frame)
            compared += len(outcomes)
            same += sum((o.evaluated, o.failed) == ours.get(o.rule_id) for o in outcomes)
            print(f"{name:28s} {len(frame):>10,} {len(group):>5} {took:>8.2f}")
            del frame
    print()
    print(f"warehouse        {url.split('?')[0]}  ({len(orgs)} institutions, {rows:,} rows in data sets)")
    print(f"rules            {len(rules)} in {len(datasets_of(rules))} data sets")
    print(f"in-warehouse     {sql_s:8.2f} s  all rules, problem records written")
    print(f"GE pandas        {ge_s:8.2f} s  validation (+ {fetch_s:.2f} s fetching the relations to pandas)")
    print(f"ratio            {ge_s / sql_s:8.1f} ×  GE-pandas / in-warehouse  (target ≥ 20×)")
    print(f"identical counts {same}/{compared} expectations (evaluated and unexpected)")
    print(f"scoring          {score_s:8.2f} s  ({scored:,} score rows, day → year)")
    print(f"peak RSS         {_rss_mb():8.0f} MB")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1])
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(_tiny_county(Path(tmp)))
