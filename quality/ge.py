"""Great Expectations 1.x: every catalog rule as an expectation in one suite per data set (generated from the
catalog, stored as GE JSON in quality/suites/), validated by GE over pandas or over PostgreSQL (GE's SQL engine)
on the data set's relation — the same relation the in-warehouse SQL reads."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd

from quality.catalog import Rule, datasets_of, load_catalog
from quality.check_types import compile_rule

SUITES_DIR = Path(__file__).with_name("suites")
logging.getLogger("great_expectations").setLevel(logging.ERROR)


@dataclass(frozen=True)
class GeOutcome:
    rule_id: str
    evaluated: int  # GE element_count
    failed: int  # GE unexpected_count


def _class_name(expectation_type: str) -> str:
    return "".join(part.capitalize() for part in expectation_type.split("_"))


def expectation(rule: Rule, dialect: str = "postgres") -> Any:
    """The rule as a GE expectation object (rule metadata in `meta`)."""
    compiled = compile_rule(rule, dialect)
    cls = getattr(gx.expectations, _class_name(compiled.expectation))
    meta = {
        "rule_id": rule.id,
        "check": rule.check_type,
        "dimension": rule.dimension,
        "dimension_zh": rule.dimension_zh,
        "severity": rule.severity,
        "standard": rule.standard,
        "label": rule.label,
        "description": rule.description,
    }
    return cls(**compiled.kwargs, meta=meta)


def suite_for(rules: list[Rule]) -> gx.ExpectationSuite:
    ds = rules[0].dataset
    return gx.ExpectationSuite(
        name=f"hutong.{ds.name}",
        expectations=[expectation(r) for r in rules],
        meta={
            "dataset": ds.name,
            "table": ds.table,
            "title": ds.title,
            "standard": ds.standard,
            "generated_from": f"quality/rules/datasets/{ds.name}.yaml",
        },
    )


def suite_json(rules: list[Rule]) -> str:
    """The suite in GE's JSON format (stable text: ids dropped, keys sorted)."""
    doc = suite_for(rules).to_json_dict()
    doc.pop("id", None)
    for exp in doc.get("expectations", []):
        exp.pop("id", None)
    return json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def write_suites(directory: Path = SUITES_DIR, rules: tuple[Rule, ...] | None = None) -> list[Path]:
    """(Re)generate quality/suites/<data set>.json from the catalog; stale files are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, group in datasets_of(rules or load_catalog()).items():
        path = directory / f"{name}.json"
        path.write_text(suite_json(group), encoding="utf-8")
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


def _outcomes(result: Any) -> list[GeOutcome]:
    out = []
    for r in result.results:
        meta = r.expectation_config.meta or {}
        infos = r.exception_info or {}
        for info in [infos, *(v for v in infos.values() if isinstance(v, dict))]:
            if info.get("raised_exception"):
                raise RuntimeError(f"GE failed on {meta.get('rule_id')}: {info.get('exception_message')}")
        res = r.result or {}
        out.append(
            GeOutcome(str(meta["rule_id"]), int(res.get("element_count") or 0), int(res.get("unexpected_count") or 0))
        )
    return out


def _context() -> Any:
    """An ephemeral GE context without progress bars."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def validate_pandas(frame: pd.DataFrame, rules: list[Rule]) -> list[GeOutcome]:
    """GE over pandas on the data set's relation (fetched from the warehouse with its derived columns)."""
    context = _context()
    asset = context.data_sources.add_pandas(name="hutong").add_dataframe_asset(name=rules[0].dataset.name)
    batch = asset.add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
    return _outcomes(batch.validate(suite_for(rules), result_format="BASIC"))


def validate_postgres(url: str, relation: str, rules: list[Rule]) -> list[GeOutcome]:
    """GE's own SQL engine on PostgreSQL over the data set's relation (a query asset)."""
    context = _context()
    sa_url = url.replace("postgresql://", "postgresql+psycopg2://", 1)
    source = context.data_sources.add_postgres(name="hutong", connection_string=sa_url)
    asset = source.add_query_asset(name=rules[0].dataset.name, query=relation)
    batch = asset.add_batch_definition_whole_table("all").get_batch()
    return _outcomes(batch.validate(suite_for(rules), result_format="BASIC"))


if __name__ == "__main__":  # python -m quality.ge: regenerate the suites
    for p in write_suites():
        print(p)
