"""Execute catalog rules inside the warehouse and record results per institution and day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import polars as pl

from quality.catalog import Rule, load_catalog
from quality.check_types import failure_condition
from warehouse import Warehouse, ensure_core


@dataclass(frozen=True)
class RuleOutcome:
    rule_id: str
    org_code: str
    evaluated: int
    failed: int


def run_id_for(day: date) -> str:
    """One quality run per day: re-running the day replaces its results (idempotent)."""
    return f"q{day.isoformat()}"


def run_rules(
    wh: Warehouse, org_codes: list[str], day: date, rules: tuple[Rule, ...] | None = None
) -> list[RuleOutcome]:
    """Evaluate every rule for every institution; institutions without data get an explicit 0/0 result."""
    ensure_core(wh)
    rules = rules or load_catalog()
    run_id = run_id_for(day)
    checked_at = datetime.now().replace(microsecond=0)
    outcomes: list[RuleOutcome] = []
    with wh.transaction():
        wh.execute("DELETE FROM quality.check_result WHERE run_id = ?", [run_id])
        wh.execute("DELETE FROM quality.problem_record WHERE run_id = ?", [run_id])
        for rule in rules:
            ds = rule.dataset
            if not wh.table_exists(ds.name):
                raise RuntimeError(f"rule {rule.id}: dataset {ds.name} does not exist; run `hutong transform` first")
            failing = failure_condition(rule, wh.dialect)
            counts = {
                org: (int(n), int(f or 0))
                for org, n, f in wh.query(
                    f"SELECT {ds.org_column}, count(*), sum(CASE WHEN {failing} THEN 1 ELSE 0 END) "
                    f"FROM {ds.name} GROUP BY {ds.org_column}"
                )
            }
            for org in org_codes:
                evaluated, failed = counts.get(org, (0, 0))
                outcomes.append(RuleOutcome(rule.id, org, evaluated, failed))
            wh.execute(
                "INSERT INTO quality.problem_record (run_id, day, org_code, dataset, rule_id, record_key, raw_origin, "
                f"batch_id, detail) SELECT ?, ?, {ds.org_column}, ?, ?, {ds.key}, _origin, _batch_id, ? "
                f"FROM {ds.name} WHERE {failing}",
                [run_id, day, ds.name, rule.id, rule.description],
            )
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
            }
        )
        wh.load("quality.check_result", frame)
    return outcomes
