"""Run feeds for institutions: every (feed, institution) pair on its own, so one failure blocks no other."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

from marts.delivery import FeedRun, run_feed
from marts.feed_config import Feed, Target, load_feeds, target_for
from warehouse import Warehouse, ensure_core


class FeedError(RuntimeError):
    """Some feed × institution runs failed; the others completed (their results are in `results`)."""

    def __init__(self, message: str, results: list[FeedRun]) -> None:
        super().__init__(message)
        self.results = results


def select_feeds(names: Iterable[str] | None = None) -> list[Feed]:
    feeds = list(load_feeds())
    if names is None:
        return feeds
    wanted = set(names)
    unknown = wanted - {f.name for f in feeds}
    if unknown:
        raise ValueError(f"unknown feeds {sorted(unknown)}; known: {', '.join(f.name for f in feeds)}")
    return [f for f in feeds if f.name in wanted]


def run_feeds(
    wh: Warehouse,
    org_codes: list[str],
    period: str,
    data_dir: Path,
    *,
    feeds: Iterable[str] | None = None,
    targets: dict[str, Target] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    progress: Callable[[str], None] | None = None,
) -> list[FeedRun]:
    """Run the chosen feeds (default: all) for each institution; raise FeedError after all ran if any failed."""
    results, errors = [], []
    ensure_core(wh)  # once, not per feed × institution
    for feed in select_feeds(feeds):
        target = target_for(feed, data_dir, targets)
        for org in org_codes:
            if progress:
                progress(f"feed {feed.name} → {target.name} for {org}")
            try:
                results.append(run_feed(wh, feed, target, org, period, data_dir, sleep=sleep, ensure=False))
            except Exception as exc:  # one institution's problem must not stop the others
                errors.append(f"{feed.name} {org}: {type(exc).__name__}: {exc}")
    if errors:
        raise FeedError("; ".join(errors), results)
    return results
