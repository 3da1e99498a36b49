"""What `hutong quality` does (kept here so hutong/cli.py only declares the options)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from hutong.config import PlatformConfig


def run_quality_command(config: PlatformConfig, day: date, since: str | None, orgs: list[str], period: str | None,
                        suites: bool, say: Callable[[str], None]) -> None:  # fmt: skip
    if suites:
        from quality.ge import write_suites

        paths = write_suites()
        say(f"{len(paths)} Great Expectations suites written to {paths[0].parent if paths else 'quality/suites'}")
        return
    from quality.stage import period_scores, run_day, run_days

    chosen = orgs or None
    runs = run_days(config, date.fromisoformat(since), day, chosen) if since else [run_day(config, day, chosen)]
    for run in runs:
        evaluated = sum(o.evaluated for o in run.outcomes)
        failed = sum(o.failed for o in run.outcomes)
        say(f"{run.day}: {len(run.outcomes)} rule results, {failed} failing of {evaluated} evaluated")
    say(f"reports: {runs[-1].report.parent}")
    if period:
        for row in period_scores(config, period, day):
            say(f"  {period} {row['scheme']:13s} #{row['rank']}/{row['peers']} {row['org_code']} {row['score']:.2f}")
