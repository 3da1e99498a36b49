"""互联互通测评 readiness: per institution and for the region, data-set conformance (share of required WS 445 /
WS 365 elements present and valued to standard), the 一致性/完整性/整合性/及时性 figures, and the gaps to close for
the target level (elements, thresholds and levels as data: quality/rules/interop.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from quality.catalog import load_catalog
from quality.runner import run_id_for
from quality.scoring import TOTAL
from warehouse import Warehouse

SPEC = Path(__file__).with_name("rules") / "interop.yaml"
FIGURES = ("consistency", "completeness", "relatedness", "timeliness")


@cache
def load_spec(path: Path = SPEC) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


@dataclass
class Readiness:
    org_code: str
    conformance: float | None  # share of required elements conforming, over the data sets the institution sends
    elements: int
    conforming: int
    figures: dict[str, float | None]
    gaps: list[str] = field(default_factory=list)
    level: str | None = None  # highest level whose thresholds are all met


def element_status(wh: Warehouse, day: date, org: str) -> list[tuple[str, str, str, bool]]:
    """(data set, column, element id, conforming) for every required element of the data sets the org sends."""
    spec = load_spec()
    share = float(spec["element_pass_rate"])
    rules_by_col: dict[tuple[str, str], list[str]] = {}
    for r in load_catalog():
        column = r.params.get("column")
        if column:
            rules_by_col.setdefault((r.dataset.name, str(column)), []).append(r.id)
    results = {
        rid: (int(e), int(f))
        for rid, e, f in wh.query(
            "SELECT rule_id, evaluated, failed FROM quality.check_result WHERE run_id = ? AND org_code = ?",
            [run_id_for(day), org],
        )
    }
    out = []
    for ds, entry in spec["datasets"].items():
        ids = rules_by_col.get((ds, next(iter(entry["elements"]))), [])
        if not ids or results.get(ids[0], (0, 0))[0] == 0:
            continue  # the institution does not send this data set
        for column, element in entry["elements"].items():
            checks = [results.get(rid, (0, 0)) for rid in rules_by_col.get((ds, column), [])]
            ok = bool(checks) and all(e > 0 and (e - f) / e >= share for e, f in checks)
            out.append((ds, column, element, ok))
    return out


def readiness(wh: Warehouse, day: date, orgs: list[str], scheme: str = "regional") -> list[Readiness]:
    spec = load_spec()
    out = []
    for org in orgs:
        status = element_status(wh, day, org)
        figures = {
            d: s
            for d, s in wh.query(
                "SELECT dimension, score FROM quality.score WHERE scheme = ? AND org_code = ? AND period_type = 'day' "
                "AND period = ? AND dimension <> ?",
                [scheme, org, day.isoformat(), TOTAL],
            )
            if d in FIGURES
        }
        conforming = sum(ok for *_, ok in status)
        r = Readiness(org, conforming / len(status) if status else None, len(status), conforming,
                      {d: figures.get(d) for d in FIGURES})  # fmt: skip
        target = spec["levels"][spec["target"]]
        if r.conformance is not None and r.conformance < target["conformance"]:
            missing = [f"{ds}.{col} ({el})" for ds, col, el, ok in status if not ok]
            r.gaps.append(f"数据集标准符合率 {r.conformance:.1%} < {target['conformance']:.0%}: " + ", ".join(missing))
        for d in FIGURES:
            value = r.figures[d]
            if value is not None and value < target[d]:
                r.gaps.append(f"{d} {value:.2f} < {target[d]}")
        for name, lv in spec["levels"].items():
            if (
                r.conformance is not None
                and r.conformance >= lv["conformance"]
                and all(r.figures[d] is None or r.figures[d] >= lv[d] for d in FIGURES)
            ):
                r.level = name
        out.append(r)
    return out


def regional(rows: list[Readiness]) -> Readiness:
    """The region as a whole: elements pooled, figures averaged over the institutions that have them."""
    elements = sum(r.elements for r in rows)
    conforming = sum(r.conforming for r in rows)
    figures: dict[str, float | None] = {}
    for d in FIGURES:
        vals = [r.figures[d] for r in rows if r.figures[d] is not None]
        figures[d] = sum(vals) / len(vals) if vals else None
    return Readiness("region", conforming / elements if elements else None, elements, conforming, figures,
                     [g for r in rows for g in r.gaps[:1]])  # fmt: skip
