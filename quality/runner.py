"""Execute catalog rules inside the warehouse (one scan per data set) and record results per institution and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from quality.catalog import Rule, datasets_of, load_catalog
from quality.check_types import failure_sql
from quality.relation import relation_sql, table_columns
from warehouse import Warehouse, ensure_core

TEMP = "q_relation"


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


def _evaluate_dataset(
    wh: Warehouse, rules: list[Rule], run_id: str, day: date, org_codes: list[str], record: bool = True
) -> dict[tuple[str, str], tuple[int, int]]:
    """Materialise the data set's relation once, count per institution and rule, list failing records."""
    ds = rules[0].dataset
    columns = table_columns(wh, ds.table)
    sql, compiled = relation_sql(ds, rules, columns, wh.dialect)
    wh.execute(f"DROP TABLE IF EXISTS {TEMP}")
    marks = ", ".join("?" for _ in org_codes) or "NULL"
    wh.execute(f"CREATE TEMP TABLE {TEMP} AS SELECT * FROM ({sql}) r WHERE _q_org IN ({marks})", org_codes)
    fails = {r.id: failure_sql(compiled[r.id], wh.dialect) for r in rules}
    sums = ", ".join(f"sum(CASE WHEN {f} THEN 1 ELSE 0 END)" for f in fails.values())
    counts: dict[tuple[str, str], tuple[int, int]] = {}
    for row in wh.query(f"SELECT _q_org, count(*), {sums} FROM {TEMP} GROUP BY _q_org"):
        for rule, failed in zip(rules, row[2:], strict=True):
            counts[(str(row[0]), rule.id)] = (int(row[1]), int(failed or 0))
    for rule in rules if record else ():
        wh.execute(
            "INSERT INTO quality.problem_record (run_id, day, org_code, dataset, rule_id, record_key, raw_origin, "
            "batch_id, detail) SELECT DISTINCT ?, ?, _q_org, ?, ?, _q_key, _q_origin, _q_batch, ? "
            f"FROM {TEMP} WHERE {fails[rule.id]}",
            [run_id, day, ds.name, rule.id, rule.description],
        )
    wh.execute(f"DROP TABLE IF EXISTS {TEMP}")
    return counts


def dataset_present(wh: Warehouse, table: str) -> bool:
    """A data set is evaluated only when its table exists and holds rows (else its rules are `not_evaluated`)."""
    return wh.table_exists(table) and bool(wh.query(f"SELECT 1 FROM {table} LIMIT 1"))


def run_rules(
    wh: Warehouse, org_codes: list[str], day: date, rules: tuple[Rule, ...] | None = None
) -> list[RuleOutcome]:
    """Evaluate every rule for every institution; institutions without data get an explicit 0/0 result, and a
    data set whose table does not exist (yet) or is empty gets `not_evaluated` (no finding)."""
    ensure_core(wh)
    rules = rules or load_catalog()
    run_id = run_id_for(day)
    checked_at = datetime.now().replace(microsecond=0)
    outcomes: list[RuleOutcome] = []
    with wh.transaction():
        marks = ", ".join("?" for _ in org_codes) or "NULL"
        for table in ("quality.check_result", "quality.problem_record"):  # only these institutions' results
            wh.execute(f"DELETE FROM {table} WHERE run_id = ? AND org_code IN ({marks})", [run_id, *org_codes])
        for group in datasets_of(rules).values():
            present = dataset_present(wh, group[0].dataset.table)
            counts = _evaluate_dataset(wh, group, run_id, day, org_codes) if present else {}
            status = "evaluated" if present else "not_evaluated"
            for rule in group:
                for org in org_codes:
                    evaluated, failed = counts.get((org, rule.id), (0, 0))
                    outcomes.append(RuleOutcome(rule.id, org, evaluated, failed, status))
        by_id = {r.id: r for r in rules}
        frame = pl.DataFrame(
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
                "checked_at": pl.Series([checked_at] * len(outcomes), dtype=pl.Datetime("us")),
                "label": [by_id[o.rule_id].label for o in outcomes],
                "status": [o.status for o in outcomes],
                "standard": [by_id[o.rule_id].standard for o in outcomes],
            }
        )
        if len(frame):
            wh.load("quality.check_result", frame)
    return outcomes


def evaluate(wh: Warehouse, rules: list[Rule], org_codes: list[str]) -> dict[str, tuple[int, int]]:
    """Read-only: (evaluated, failed) per rule of one data set over the institutions, nothing written (asset checks)."""
    if not rules or not wh.table_exists(rules[0].dataset.table):
        return {}
    counts = _evaluate_dataset(wh, rules, "", date.today(), org_codes, record=False)
    totals: dict[str, tuple[int, int]] = {}
    for (_, rule_id), (evaluated, failed) in counts.items():
        e, f = totals.get(rule_id, (0, 0))
        totals[rule_id] = (e + evaluated, f + failed)
    return totals
