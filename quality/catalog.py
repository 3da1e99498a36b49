"""The quality rule catalog (quality/rules/*.yaml) as typed objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

RULES_DIR = Path(__file__).with_name("rules")
DIMENSIONS = ("consistency", "completeness", "integration", "timeliness", "stability")
SEVERITIES = ("error", "warning")


class CatalogError(Exception):
    """A rule in the catalog is malformed."""


@dataclass(frozen=True)
class Dataset:
    name: str
    key: str
    org_column: str


@dataclass(frozen=True)
class Rule:
    id: str
    dataset: Dataset
    check_type: str
    dimension: str
    severity: str
    description: str
    standard: str = ""
    params: dict[str, Any] = field(default_factory=dict)


@cache
def load_catalog(path: Path | None = None) -> tuple[Rule, ...]:
    """Read and check the rule catalog."""
    spec = yaml.safe_load((path or RULES_DIR / "catalog.yaml").read_text(encoding="utf-8"))
    datasets = {name: Dataset(name, d["key"], d.get("org_column", "org_code")) for name, d in spec["datasets"].items()}
    rules = []
    seen: set[str] = set()
    for raw in spec["rules"]:
        rule_id = raw.get("id", "?")
        if rule_id in seen:
            raise CatalogError(f"rule {rule_id} is listed twice")
        seen.add(rule_id)
        if raw.get("dataset") not in datasets:
            raise CatalogError(f"rule {rule_id}: dataset {raw.get('dataset')!r} is not declared under datasets")
        if raw.get("dimension") not in DIMENSIONS:
            raise CatalogError(f"rule {rule_id}: dimension must be one of {', '.join(DIMENSIONS)}")
        if raw.get("severity") not in SEVERITIES:
            raise CatalogError(f"rule {rule_id}: severity must be one of {', '.join(SEVERITIES)}")
        fixed = {"id", "dataset", "check_type", "dimension", "severity", "description", "standard"}
        rules.append(
            Rule(
                id=rule_id,
                dataset=datasets[raw["dataset"]],
                check_type=raw["check_type"],
                dimension=raw["dimension"],
                severity=raw["severity"],
                description=raw.get("description", ""),
                standard=raw.get("standard", ""),
                params={k: v for k, v in raw.items() if k not in fixed},
            )
        )
    return tuple(rules)
