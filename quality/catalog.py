"""The quality rule catalog as typed objects: data sets (quality/rules/datasets/*.yaml) whose rule templates are
expanded over their columns into concrete rules, each with its dimension, severity and standard."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

RULES_DIR = Path(__file__).with_name("rules")
DATASETS_DIR = RULES_DIR / "datasets"
# 互联互通测评 / 001 R11, R20 dimensions: key → Chinese name
DIMENSIONS: dict[str, str] = {
    "completeness": "完整性",
    "accuracy": "准确性",
    "consistency": "一致性",
    "logicality": "逻辑性",
    "timeliness": "及时性",
    "stability": "稳定性",
    "relatedness": "整合性",
}
SEVERITIES = ("error", "warning")


class CatalogError(Exception):
    """A data set or rule in the catalog is malformed."""


@dataclass(frozen=True)
class Dataset:
    """A relation the rules run over: the current versions of a raw table (or an ops/mpi/cdr table)."""

    name: str
    table: str
    title: str = ""
    standard: str = ""
    kind: str = "raw"  # raw: latest version per source key, deletes dropped; table: the table as it is
    key: str = "_source_key"
    org_column: str = "_org_code"
    origin: str = "_origin"
    batch: str = "_batch_id"
    where: str = ""
    columns: tuple[str, ...] = ()  # columns read (blank text → NULL); empty = all

    @property
    def source_table(self) -> str:
        return self.table


@dataclass(frozen=True)
class Rule:
    id: str
    dataset: Dataset
    check_type: str
    dimension: str
    severity: str
    description: str
    standard: str = ""
    label: str = ""  # the defect family the rule stands for (synthetic truth `expected_rule`)
    advice: str = ""  # what the institution should fix (reports); default: the check type's advice
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def dimension_zh(self) -> str:
        return DIMENSIONS[self.dimension]


def _dataset(spec: dict[str, Any], path: Path) -> Dataset:
    try:
        return Dataset(
            name=str(spec["dataset"]),
            table=str(spec["table"]),
            title=str(spec.get("title", "")),
            standard=str(spec.get("standard", "")),
            kind=str(spec.get("kind", "raw")),
            key=str(spec.get("key", "_source_key")),
            org_column=str(spec.get("org_column", "_org_code")),
            origin=str(spec.get("origin", "_origin")),
            batch=str(spec.get("batch", "_batch_id")),
            where=str(spec.get("where", "")),
            columns=tuple(spec.get("columns", ())),
        )
    except KeyError as exc:
        raise CatalogError(f"{path.name}: data set needs {exc}") from exc


def _expand(raw: dict[str, Any]) -> list[dict[str, Any]]:
    """A template with `columns: [...]` becomes one rule per column (`{column}` / `{COLUMN}` in its id)."""
    if "columns" not in raw or raw.get("check") in ("duplicate",):
        return [raw]
    out = []
    for column in raw["columns"]:
        one = {k: v for k, v in raw.items() if k != "columns"}
        one["column"] = column
        one["id"] = str(raw["id"]).format(column=column, COLUMN=column.upper().replace("_", "-"))
        one["description"] = str(raw.get("description", "")).format(column=column)
        out.append(one)
    return out


FIXED = {"id", "check", "dimension", "severity", "description", "standard", "label", "advice"}


def _rule(raw: dict[str, Any], ds: Dataset) -> Rule:
    rule_id = str(raw.get("id", "?"))
    if raw.get("dimension") not in DIMENSIONS:
        raise CatalogError(f"rule {rule_id}: dimension must be one of {', '.join(DIMENSIONS)}")
    if raw.get("severity", "warning") not in SEVERITIES:
        raise CatalogError(f"rule {rule_id}: severity must be one of {', '.join(SEVERITIES)}")
    return Rule(
        id=rule_id,
        dataset=ds,
        check_type=str(raw.get("check", "")),
        dimension=str(raw["dimension"]),
        severity=str(raw.get("severity", "warning")),
        description=str(raw.get("description", "")),
        standard=str(raw.get("standard", ds.standard)),
        label=str(raw.get("label", rule_id)),
        advice=str(raw.get("advice", "")),
        params={k: v for k, v in raw.items() if k not in FIXED},
    )


@cache
def load_datasets(directory: Path = DATASETS_DIR) -> tuple[tuple[Dataset, tuple[dict[str, Any], ...]], ...]:
    out = []
    for path in sorted(directory.glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        out.append((_dataset(spec, path), tuple(spec.get("rules", ()))))
    return tuple(out)


@cache
def load_catalog(directory: Path = DATASETS_DIR) -> tuple[Rule, ...]:
    """Every concrete rule of every data set, checked (unique ids, known dimension/severity/check type)."""
    from quality.check_types import CHECK_TYPES

    rules: list[Rule] = []
    seen: set[str] = set()
    for ds, templates in load_datasets(directory):
        for template in templates:
            for raw in _expand(dict(template)):
                rule = _rule(raw, ds)
                if rule.id in seen:
                    raise CatalogError(f"rule {rule.id} is listed twice")
                if rule.check_type not in CHECK_TYPES:
                    raise CatalogError(
                        f"rule {rule.id}: unknown check {rule.check_type!r}; known: {', '.join(CHECK_TYPES)}"
                    )
                seen.add(rule.id)
                rules.append(rule)
    return tuple(rules)


def datasets_of(rules: tuple[Rule, ...]) -> dict[str, list[Rule]]:
    """Rules grouped by data set name, in catalog order."""
    grouped: dict[str, list[Rule]] = {}
    for rule in rules:
        grouped.setdefault(rule.dataset.name, []).append(rule)
    return grouped
