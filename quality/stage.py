"""The quality stage: run the rules for a day (T+1: the previous day by default), score, write the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hutong.config import PlatformConfig
from quality.report import Institution, render_reports
from quality.runner import RuleOutcome, run_rules
from quality.scoring import score_day
from warehouse import Warehouse


@dataclass
class QualityRun:
    day: date
    outcomes: list[RuleOutcome] = field(default_factory=list)
    reports: dict[str, Path] = field(default_factory=dict)
    scored_rows: int = 0

    @property
    def report(self) -> Path:
        return self.reports["region"]


def institutions(config: PlatformConfig, orgs: list[str] | None = None) -> list[Institution]:
    chosen = [config.institution(o) for o in orgs] if orgs else list(config.institutions)
    return [Institution(i.org_code, i.name, i.type) for i in chosen]


def run_day(config: PlatformConfig, day: date, orgs: list[str] | None = None, reports_root: Path | None = None,
            report: bool = True) -> QualityRun:  # fmt: skip
    """Rules → scores (every scheme, day and the periods containing it) → reports, for one day."""
    chosen = institutions(config, orgs)
    every = {i.org_code: i.type for i in config.institutions}
    result = QualityRun(day)
    with Warehouse(config.warehouse_url) as wh:
        result.outcomes = run_rules(wh, [i.org_code for i in chosen], day)
        result.scored_rows = score_day(wh, day, every)
        if report:
            root = reports_root or config.data_dir / "reports"
            result.reports = render_reports(wh, institutions(config), day, root, config.name)
    return result


def run_days(config: PlatformConfig, since: date, until: date, orgs: list[str] | None = None) -> list[QualityRun]:
    """One run per day from `since` to `until` (reports for the last day only)."""
    days = [since + timedelta(days=n) for n in range((until - since).days + 1)]
    return [run_day(config, d, orgs, report=(d == until)) for d in days]


def period_scores(config: PlatformConfig, period_type: str, day: date) -> list[dict[str, Any]]:
    """Total scores of the period containing `day` (per scheme and institution), best first."""
    from quality.scoring import TOTAL, period_of

    with Warehouse(config.warehouse_url) as wh:
        return wh.query_dicts(
            "SELECT scheme, org_code, score, rank, peers FROM quality.score WHERE period_type = ? AND period = ? "
            "AND dimension = ? ORDER BY scheme, rank",
            [period_type, period_of(day, period_type), TOTAL],
        )
