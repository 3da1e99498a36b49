"""Scores per institution × data set × dimension × day from a day's rule results, by the scheme of the institution's
type (quality/rules/schemes.yaml), rolled up to week / month / quarter / year, ranked among peers."""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from quality.runner import run_id_for
from warehouse import Warehouse

SCHEMES_FILE = Path(__file__).with_name("rules") / "schemes.yaml"
TOTAL = "_total"
PERIODS = ("day", "week", "month", "quarter", "year")
RANK_DECIMALS = 2  # scores equal to two decimals (as reports print them) are a tie


@dataclass(frozen=True)
class Scheme:
    name: str
    title: str
    org_types: tuple[str, ...]
    mean: str  # weighted / arithmetic
    datasets: tuple[str, ...]
    dimension_weights: dict[str, float]
    severity_weights: dict[str, float]
    rule_weights: dict[str, float]

    def applies_to(self, org_type: str) -> bool:
        return not self.org_types or org_type in self.org_types

    def rule_weight(self, rule_id: str, severity: str) -> float:
        if self.mean == "arithmetic":
            return 1.0
        return float(self.rule_weights.get(rule_id, self.severity_weights.get(severity, 1.0)))

    def dimension_weight(self, dimension: str) -> float:
        return 1.0 if self.mean == "arithmetic" else float(self.dimension_weights.get(dimension, 1.0))


@cache
def load_schemes(path: Path = SCHEMES_FILE) -> tuple[Scheme, ...]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return tuple(
        Scheme(
            name=name,
            title=str(s.get("title", name)),
            org_types=tuple(s.get("org_types") or ()),
            mean=str(s.get("mean", "weighted")),
            datasets=tuple(s.get("datasets") or ()),
            dimension_weights=dict(s.get("dimension_weights") or {}),
            severity_weights=dict(s.get("severity_weights") or {}),
            rule_weights=dict(s.get("rule_weights") or {}),
        )
        for name, s in spec["schemes"].items()
    )


def period_of(day: date, period_type: str) -> str:
    """The period label a day belongs to: 2026-10-05 → 2026-W40 / 2026-10 / 2026-Q4 / 2026."""
    if period_type == "day":
        return day.isoformat()
    if period_type == "week":
        year, week, _ = day.isocalendar()
        return f"{year}-W{week:02d}"
    if period_type == "month":
        return f"{day.year}-{day.month:02d}"
    if period_type == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return str(day.year)


def _wmean(pairs: list[tuple[float, float]]) -> float | None:
    total = sum(w for _, w in pairs)
    return None if total == 0 else sum(s * w for s, w in pairs) / total


def score_results(results: list[dict[str, Any]], scheme: Scheme) -> tuple[list[dict], list[dict]]:
    """(data set rows, institution rows) for one scheme from check_result rows of its institutions."""
    by_ds: dict[tuple[str, str], dict[str, list[tuple[float, float]]]] = {}
    sizes: dict[tuple[str, str], int] = {}
    counts: dict[tuple[str, str, str], list[int]] = {}
    for r in results:
        if scheme.datasets and r["dataset"] not in scheme.datasets:
            continue
        if r["status"] != "evaluated" or not r["evaluated"]:
            continue
        key = (r["org_code"], r["dataset"])
        score = 100.0 * (1 - r["failed"] / r["evaluated"])
        by_ds.setdefault(key, {}).setdefault(r["dimension"], []).append(
            (score, scheme.rule_weight(r["rule_id"], r["severity"]))
        )
        sizes[key] = max(sizes.get(key, 0), int(r["evaluated"]))
        c = counts.setdefault((*key, r["dimension"]), [0, 0])
        c[0] += int(r["evaluated"])
        c[1] += int(r["failed"])
    ds_rows: list[dict] = []
    org_dims: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for (org, ds), dims in by_ds.items():
        dim_scores = {d: _wmean(p) for d, p in dims.items()}
        weight = float(sizes[(org, ds)]) if scheme.mean == "weighted" else 1.0
        for d, s in dim_scores.items():
            ev, fl = counts[(org, ds, d)]
            ds_rows.append({"org_code": org, "dataset": ds, "dimension": d, "score": s, "evaluated": ev, "failed": fl})
            org_dims.setdefault(org, {}).setdefault(d, []).append((float(s or 0), weight))
        total = _wmean([(float(s or 0), scheme.dimension_weight(d)) for d, s in dim_scores.items()])
        ev = sum(counts[(org, ds, d)][0] for d in dims)
        fl = sum(counts[(org, ds, d)][1] for d in dims)
        ds_rows.append(
            {"org_code": org, "dataset": ds, "dimension": TOTAL, "score": total, "evaluated": ev, "failed": fl}
        )
        org_dims.setdefault(org, {}).setdefault(TOTAL, []).append((float(total or 0), weight))
    org_counts: dict[tuple[str, str], list[int]] = {}  # one pass (was a scan of every data set row per org)
    for r in ds_rows:
        c = org_counts.setdefault((r["org_code"], r["dimension"]), [0, 0])
        c[0] += r["evaluated"]
        c[1] += r["failed"]
    org_rows = []
    for org, dims in org_dims.items():
        for d, pairs in dims.items():
            ev, fl = org_counts[(org, d)]
            org_rows.append({"org_code": org, "dimension": d, "score": _wmean(pairs), "evaluated": ev, "failed": fl})
    return ds_rows, org_rows


def _rank(rows: list[dict]) -> None:
    """Standard competition ranking (1, 2, 2, 4) of the total scores among peers: institutions whose scores are
    equal at the precision the reports show (RANK_DECIMALS) share a rank, and the next rank skips accordingly."""
    totals = [r for r in rows if r["dimension"] == TOTAL]
    keys = sorted(-round(r["score"] or 0, RANK_DECIMALS) for r in totals)
    for r in totals:
        r["rank"], r["peers"] = bisect_left(keys, -round(r["score"] or 0, RANK_DECIMALS)) + 1, len(totals)


def score_day(wh: Warehouse, day: date, org_types: dict[str, str]) -> int:
    """Score the day's run for every scheme and roll the periods containing `day` up; returns rows written."""
    run_id = run_id_for(day)
    results = wh.query_dicts(
        "SELECT org_code, dataset, rule_id, dimension, severity, evaluated, failed, status FROM quality.check_result "
        "WHERE run_id = ?",
        [run_id],
    )
    now = datetime.now().replace(microsecond=0)
    written = 0
    with wh.transaction():
        for scheme in load_schemes():
            orgs = {o for o, t in org_types.items() if scheme.applies_to(t)}
            ds_rows, org_rows = score_results([r for r in results if r["org_code"] in orgs], scheme)
            _rank(org_rows)
            period = day.isoformat()
            wh.execute("DELETE FROM quality.dataset_score WHERE scheme = ? AND period_type = 'day' AND period = ?",
                       [scheme.name, period])  # fmt: skip
            wh.execute("DELETE FROM quality.score WHERE scheme = ? AND period_type = 'day' AND period = ?",
                       [scheme.name, period])  # fmt: skip
            written += _write(wh, "quality.dataset_score", ds_rows, scheme, "day", period, now, org_types)
            written += _write(wh, "quality.score", org_rows, scheme, "day", period, now, org_types)
            for period_type in PERIODS[1:]:
                written += rollup(wh, scheme, period_type, period_of(day, period_type), now, org_types)
    return written


def _write(wh: Warehouse, table: str, rows: list[dict], scheme: Scheme, period_type: str, period: str,
           now: datetime, org_types: dict[str, str]) -> int:  # fmt: skip
    if not rows:
        return 0
    frame = pl.DataFrame(rows).with_columns(
        pl.lit(scheme.name).alias("scheme"),
        pl.lit(period_type).alias("period_type"),
        pl.lit(period).alias("period"),
        pl.lit(now).cast(pl.Datetime("us")).alias("computed_at"),
        pl.col("score").cast(pl.Float64),
        pl.col("evaluated").cast(pl.Int64),
        pl.col("failed").cast(pl.Int64),
    )
    if table == "quality.score":
        frame = frame.with_columns(pl.col("org_code").replace_strict(org_types, default=None).alias("org_type"))
        for c in ("rank", "peers"):
            frame = frame.with_columns(
                pl.col(c).cast(pl.Int64) if c in frame.columns else pl.lit(None, pl.Int64).alias(c)
            )
    return wh.load(table, frame)


def rollup(wh: Warehouse, scheme: Scheme, period_type: str, period: str, now: datetime,
           org_types: dict[str, str]) -> int:  # fmt: skip
    """A period's scores: the mean of its daily scores (counts summed), re-ranked among peers."""
    days = [d for (d,) in wh.query(
        "SELECT DISTINCT period FROM quality.score WHERE scheme = ? AND period_type = 'day'", [scheme.name])
        if period_of(date.fromisoformat(d), period_type) == period]  # fmt: skip
    if not days:
        return 0
    marks = ", ".join("?" for _ in days)
    written = 0
    for table, keys in (
        ("quality.dataset_score", "org_code, dataset, dimension"),
        ("quality.score", "org_code, dimension"),
    ):
        rows = wh.query_dicts(
            f"SELECT {keys}, avg(score) AS score, sum(evaluated) AS evaluated, sum(failed) AS failed FROM {table} "
            f"WHERE scheme = ? AND period_type = 'day' AND period IN ({marks}) GROUP BY {keys}",
            [scheme.name, *days],
        )
        if table == "quality.score":
            _rank(rows)
        wh.execute(f"DELETE FROM {table} WHERE scheme = ? AND period_type = ? AND period = ?",
                   [scheme.name, period_type, period])  # fmt: skip
        written += _write(wh, table, rows, scheme, period_type, period, now, org_types)
    return written
