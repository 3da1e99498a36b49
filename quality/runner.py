"""Execute catalog rules inside the warehouse (one scan per data set for all its rules, one INSERT … SELECT for all
its failing records) and record results per institution and day."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime
from typing import TypeVar

import polars as pl

from quality.catalog import Rule, datasets_of, load_catalog
from quality.check_types import failure_sql, lit
from quality.current import current_table
from quality.flags import flag_columns, flags_table, stored_rules, sync_stored
from quality.relation import base_sql, org_filter, relation_sql, rule_columns
from warehouse import Warehouse, ensure_core

TEMP = "q_relation"
WORKERS = 2  # data sets run at a time (quality.runner.run_rules)
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: str
    org_code: str
    evaluated: int
    failed: int
    status: str = "evaluated"


def run_id_for(day: date) -> str:
    """One quality run per day: re-running the day replaces its results (idempotent)."""
    return f"q{day.isoformat()}"


def _flags_sql(
    ds_rules: list[Rule], columns: list[tuple[str, str]], dialect: str, orgs: list[str], current: str = ""
) -> str:
    """One row per record of the institutions: lineage plus a boolean per rule, TRUE where the record fails it."""
    ds = ds_rules[0].dataset
    sql, compiled = relation_sql(ds, ds_rules, columns, dialect, org_filter(ds, orgs), current)
    fails = ", ".join(
        f"coalesce({failure_sql(compiled[r.id], dialect)}, false) AS _f{i}" for i, r in enumerate(ds_rules)
    )
    return f"SELECT _q_org, _q_key, _q_origin, _q_batch, {fails} FROM ({sql}) r"


def _counts_sql(names: list[str], source: str, where: str = "") -> str:
    """Records and failures per institution of the boolean columns `names`, in one scan."""
    fails = ", ".join(f"count(*) FILTER (WHERE {n})" for n in names)
    return f"SELECT _q_org, count(*), {fails} FROM {source}{where} GROUP BY _q_org"


def _write_problems(
    wh: Warehouse,
    source: str,
    rules: list[Rule],
    names: list[str],
    failing: set[int],
    head: list,
    where: str = "",
    unique: bool = False,
) -> None:
    """Every failing record of the rules `failing` (indexes into `rules` / their flag columns `names`) of `source`
    into quality.problem_record, with one INSERT … SELECT; `head`: run id, day, data set. `unique`: `source` holds
    each record once (stored flags), so no DISTINCT is needed."""
    if not failing:
        return
    chosen = sorted(failing)
    values = ", ".join(f"(?, ?, f.{names[i]})" for i in chosen)
    also = f" AND {where}" if where else ""
    wh.execute(
        "INSERT INTO quality.problem_record (run_id, day, org_code, dataset, rule_id, record_key, raw_origin, "
        f"batch_id, detail) SELECT {'' if unique else 'DISTINCT '}?, ?, f._q_org, ?, v.rule_id, f._q_key, "
        "f._q_origin, f._q_batch, "
        f"v.detail FROM {source} f CROSS JOIN LATERAL (VALUES {values}) AS v(rule_id, detail, failed) "
        f"WHERE v.failed AND ({' OR '.join(f'f.{names[i]}' for i in chosen)}){also}",
        [*head, *(x for i in chosen for x in (rules[i].id, rules[i].description))],
    )


def _evaluate_dataset(
    wh: Warehouse,
    rules: list[Rule],
    columns: list[tuple[str, str]],
    run_id: str,
    day: date,
    org_codes: list[str],
    record: bool = True,
    current: str = "",
    stored: tuple[Rule, ...] = (),
) -> dict[tuple[str, str], tuple[int, int]]:
    """Every rule's evaluated/failed per institution; when recording, every failing record of every rule is written
    with one INSERT … SELECT per source. Rules in `stored` are read from the data set's stored flags (row-local rules
    evaluated when their records were merged, quality/flags.py); the others are evaluated in one scan of the
    relation, materialising only the records failing some rule (narrow: lineage + one boolean per rule); the records
    evaluated are counted over the base rows. `current`: the raw data set's current-version table (default: from
    raw)."""
    ds = rules[0].dataset
    computed = [r for r in rules if r not in stored]
    if not record:
        flags = _flags_sql(computed, columns, wh.dialect, org_codes, current)
        rows = wh.query(_counts_sql([f"_f{i}" for i in range(len(computed))], f"({flags}) f"))
        return {
            (str(row[0]), r.id): (int(row[1]), int(f or 0))
            for row in rows
            for r, f in zip(computed, row[2:], strict=True)
        }
    head = [run_id, day, ds.name]
    base = base_sql(ds, columns, org_filter(ds, org_codes), current)
    totals = {str(o): int(n) for o, n in wh.query(f"SELECT CAST({ds.org_column} AS VARCHAR), count(*) FROM ({base}) b "
                                                     "GROUP BY 1")}  # fmt: skip
    failed: dict[tuple[str, str], int] = {}

    def tally(part: list[Rule], names: list[str], source: str, where: str = "", unique: bool = False) -> None:
        failing: set[int] = set()
        for row in wh.query(_counts_sql(names, source, f" f WHERE {where}" if where else "")):
            for i, (rule, n) in enumerate(zip(part, row[2:], strict=True)):
                failed[(str(row[0]), rule.id)] = int(n or 0)
                failing.update([i] if n else [])
        _write_problems(wh, source, part, names, failing, head, where, unique)

    if computed:
        flags = _flags_sql(computed, columns, wh.dialect, org_codes, current)
        names = [f"_f{i}" for i in range(len(computed))]
        wh.execute(f"DROP TABLE IF EXISTS {TEMP}")
        wh.execute(f"CREATE TEMP TABLE {TEMP} AS SELECT * FROM ({flags}) f WHERE {' OR '.join(names)}")
        tally(computed, names, TEMP)
        wh.execute(f"DROP TABLE IF EXISTS {TEMP}")
    if stored:
        local = list(stored)
        names = list(flag_columns(local, wh.dialect).values())
        orgs = f"f._q_org IN ({', '.join(lit(o) for o in org_codes) or 'NULL'})"
        tally(local, names, flags_table(ds), orgs, unique=True)  # one row per current record
    return {(org, r.id): (n, failed.get((org, r.id), 0)) for org, n in totals.items() for r in rules}


def in_parallel(wh: Warehouse, items: list[T], work: Callable[[T, Warehouse], R], workers: int) -> list[R]:
    """`work(item, connection)` for every item, `workers` at a time, each worker on a connection of its own
    (`Warehouse.sibling`; transactions of its own), items started in the order given; results in that order."""
    if workers <= 1 or len(items) < 2:
        return [work(item, wh) for item in items]
    local = threading.local()
    opened: list[Warehouse] = []
    lock = threading.Lock()

    def run(item: T) -> R:
        if not hasattr(local, "wh"):
            with lock:
                local.wh = wh.sibling()
                opened.append(local.wh)
        return work(item, local.wh)

    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="quality") as pool:
            return list(pool.map(run, items))
    finally:
        for other in opened:
            other.close()


def _check_frame(run_id: str, day: date, outcomes: list[RuleOutcome], rules: list[Rule], at: datetime) -> pl.DataFrame:
    """`quality.check_result` rows of `outcomes`."""
    by_id = {r.id: r for r in rules}
    return pl.DataFrame(
        {
            "run_id": run_id,
            "day": pl.Series([day] * len(outcomes), dtype=pl.Date),
            "org_code": [o.org_code for o in outcomes],
            "dataset": [by_id[o.rule_id].dataset.name for o in outcomes],
            "rule_id": [o.rule_id for o in outcomes],
            "check_type": [by_id[o.rule_id].check_type for o in outcomes],
            "dimension": [by_id[o.rule_id].dimension for o in outcomes],
            "severity": [by_id[o.rule_id].severity for o in outcomes],
            "evaluated": pl.Series([o.evaluated for o in outcomes], dtype=pl.Int64),
            "failed": pl.Series([o.failed for o in outcomes], dtype=pl.Int64),
            "checked_at": pl.Series([at] * len(outcomes), dtype=pl.Datetime("us")),
            "label": [by_id[o.rule_id].label for o in outcomes],
            "status": [o.status for o in outcomes],
            "standard": [by_id[o.rule_id].standard for o in outcomes],
        }
    )


@dataclass(frozen=True)
class _DatasetRun:
    outcomes: list[RuleOutcome]
    merge_seconds: float  # bringing the current-version table and stored flags up to date
    seconds: float  # all of it


def _run_dataset(
    on: Warehouse,
    group: list[Rule],
    columns: dict[str, list[tuple[str, str]]],
    run_id: str,
    day: date,
    org_codes: list[str],
    checked_at: datetime,
) -> _DatasetRun:
    """One data set's part of a run, in one transaction: a raw data set's new batches merged into its current-version
    table and stored flags (quality/flags.py), then its results and problem records of the day for these
    institutions replaced."""
    ds, started = group[0].dataset, time.perf_counter()
    table = ds.table
    with on.transaction():
        present = table in columns and bool(on.query(f"SELECT 1 FROM {table} LIMIT 1"))  # exists, holds rows
        merged = present and ds.kind == "raw"
        if merged:
            sync_stored(on, ds, group, columns[table])
        merge_seconds = time.perf_counter() - started
        current = current_table(ds) if merged else ""
        stored = tuple(stored_rules(group, on.dialect)) if current else ()
        marks = ", ".join("?" for _ in org_codes) or "NULL"
        for result in ("quality.check_result", "quality.problem_record"):  # only these institutions' results
            on.execute(f"DELETE FROM {result} WHERE run_id = ? AND dataset = ? AND org_code IN ({marks})",
                       [run_id, ds.name, *org_codes])  # fmt: skip
        counts = (
            _evaluate_dataset(on, group, columns[table], run_id, day, org_codes, current=current, stored=stored)
            if present
            else {}
        )
        status = "evaluated" if present else "not_evaluated"
        outcomes = [
            RuleOutcome(rule.id, org, *counts.get((org, rule.id), (0, 0)), status=status)
            for rule in group
            for org in org_codes
        ]
        frame = _check_frame(run_id, day, outcomes, group, checked_at)
        if len(frame):
            on.load("quality.check_result", frame)
    return _DatasetRun(outcomes, merge_seconds, time.perf_counter() - started)


def dataset_present(wh: Warehouse, table: str) -> bool:
    """A data set is evaluated only when its table exists and holds rows (else its rules are `not_evaluated`)."""
    return wh.table_exists(table) and bool(wh.query(f"SELECT 1 FROM {table} LIMIT 1"))


def run_rules(
    wh: Warehouse,
    org_codes: list[str],
    day: date,
    rules: tuple[Rule, ...] | None = None,
    timings: dict[str, float] | None = None,
    workers: int = WORKERS,
) -> list[RuleOutcome]:
    """Evaluate every rule for every institution; institutions without data get an explicit 0/0 result, and a
    data set whose table does not exist (yet) or is empty gets `not_evaluated` (no finding).

    Data sets run `workers` at a time, each on a connection and in a transaction of its own (`_run_dataset`: they
    write different tables and different rows of the results; one data set's commits and small statements leave a
    core idle that another fills), raw data sets first, largest first. A data set's results of the day change
    together with its stored flags; results of rules no longer run are dropped at the end. `timings`, when given,
    receives the seconds spent per data set (benchmarks; `<data set>.current`: the merge part of them; they
    overlap)."""
    ensure_core(wh)
    rules = rules or load_catalog()
    run_id = run_id_for(day)
    checked_at = datetime.now().replace(microsecond=0)
    groups = datasets_of(rules)
    columns = rule_columns(wh, [g[0].dataset.table for g in groups.values()])
    sizes = wh.estimated_rows(list(columns))
    todo = sorted(groups.values(), key=lambda g: (g[0].dataset.kind != "raw", -sizes.get(g[0].dataset.table, 0)))
    done = dict(
        zip(
            [g[0].dataset.name for g in todo],
            in_parallel(
                wh, todo, lambda g, on: _run_dataset(on, g, columns, run_id, day, org_codes, checked_at), workers
            ),
            strict=True,
        )
    )
    with wh.transaction():  # results of rules this run does not have (removed from the catalog, or not asked for)
        marks = ", ".join("?" for _ in org_codes) or "NULL"
        ids = ", ".join(lit(r.id) for r in rules) or "NULL"
        for result in ("quality.check_result", "quality.problem_record"):
            wh.execute(f"DELETE FROM {result} WHERE run_id = ? AND org_code IN ({marks}) AND rule_id NOT IN ({ids})",
                       [run_id, *org_codes])  # fmt: skip
    if timings is not None:
        for name, part in done.items():
            timings[name] = part.seconds
            timings[f"{name}.current"] = part.merge_seconds
    return [o for g in groups for o in done[g].outcomes]


def evaluate(wh: Warehouse, rules: list[Rule], org_codes: list[str]) -> dict[str, tuple[int, int]]:
    """Read-only: (evaluated, failed) per rule of one data set over the institutions, nothing written (asset checks)."""
    if not rules or not wh.table_exists(rules[0].dataset.table):
        return {}
    columns = rule_columns(wh, [rules[0].dataset.table]).get(rules[0].dataset.table, [])
    counts = _evaluate_dataset(wh, rules, columns, "", date.today(), org_codes, record=False)
    totals: dict[str, tuple[int, int]] = {}
    for (_, rule_id), (evaluated, failed) in counts.items():
        e, f = totals.get(rule_id, (0, 0))
        totals[rule_id] = (e + evaluated, f + failed)
    return totals
