"""Dagster for data quality: catalog rules as asset checks on the assets whose tables they read (raw tables now;
`quality_asset_checks` takes any asset keys, so dbt models get checks when a catalog data set reads them) and a
daily quality score asset, partitioned by day (the T+1 run scores the previous day)."""

from collections.abc import Sequence
from datetime import date
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DailyPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
    asset_check,
    define_asset_job,
)

from hutong.config import PlatformConfig
from quality.catalog import datasets_of, load_catalog

SCORE_KEY = AssetKey(["quality", "score"])
SCORE_JOB = "quality_score_daily"


def table_of(key: AssetKey) -> str:
    """raw/his_patient → raw.his_patient; cdr/cdr__patient → cdr.cdr__patient."""
    return ".".join(key.path[-2:])


def quality_asset_checks(keys: Sequence[AssetKey]) -> list[Any]:
    """One asset check per catalog data set reading one of `keys`' tables: fails when an `error` rule fails."""
    groups = datasets_of(load_catalog())
    checks = []
    for key in keys:
        for name, rules in groups.items():
            if rules[0].dataset.table == table_of(key):
                checks.append(_check(key, name, rules))
    return checks


def _check(key: AssetKey, name: str, rules: list[Any]) -> Any:
    @asset_check(asset=key, name=f"quality_{name.replace('.', '_')}", required_resource_keys={"hutong"},
                 description=f"{len(rules)} catalog rules of data set {name} (quality/rules/datasets).")  # fmt: skip
    def check(context) -> AssetCheckResult:  # type: ignore[no-untyped-def]
        from quality.runner import evaluate
        from warehouse import Warehouse

        cfg: PlatformConfig = context.resources.hutong.load()
        with Warehouse(cfg.warehouse_url, read_only=cfg.warehouse_url.startswith("duckdb")) as wh:
            counts = evaluate(wh, rules, [i.org_code for i in cfg.institutions])
        failing = {r.id: counts.get(r.id, (0, 0))[1] for r in rules if counts.get(r.id, (0, 0))[1]}
        errors = {r.id for r in rules if r.severity == "error"} & set(failing)
        return AssetCheckResult(
            passed=not errors,
            severity=AssetCheckSeverity.ERROR if errors else AssetCheckSeverity.WARN,
            metadata={
                "evaluated": sum(e for e, _ in counts.values()),
                "failed": sum(failing.values()),
                "failing_rules": MetadataValue.json(failing),
            },
        )

    return check


def quality_score_asset(config: PlatformConfig, deps: Sequence[AssetKey] = ()) -> Any:
    """quality/score, partitioned by day: rules for the day, scores (day → year roll-ups), reports."""
    start = str(config.county.get("partitions_start", "2026-01-01")) if config.county else "2026-01-01"

    @asset(key=SCORE_KEY, deps=list(deps), group_name="quality", required_resource_keys={"hutong"},
           partitions_def=DailyPartitionsDefinition(start_date=start, timezone=config.timezone),
           description="Daily quality scores per institution × data set × dimension (T+1), reports.")  # fmt: skip
    def quality_score(context: AssetExecutionContext) -> MaterializeResult:
        from quality.stage import run_day

        cfg = context.resources.hutong.load()
        run = run_day(cfg, date.fromisoformat(context.partition_key))
        metadata = {
            "report": MetadataValue.path(str(run.report)),
            "scored_rows": run.scored_rows,
            "failed": sum(o.failed for o in run.outcomes),
            "evaluated": sum(o.evaluated for o in run.outcomes),
        }
        return MaterializeResult(metadata=metadata)

    return quality_score


def quality_definitions_parts(config: PlatformConfig, raw_keys: Sequence[AssetKey], deps: Sequence[AssetKey]) -> list:
    """What definitions.py adds: the checks on raw (and, by key, any dbt model) assets and the daily score asset."""
    return [*quality_asset_checks(raw_keys), quality_score_asset(config, deps)]


def quality_score_job(config: PlatformConfig) -> Any:
    """The daily score asset alone (its day partitions differ from the day × institution raw partitions)."""
    return define_asset_job(SCORE_JOB, selection=AssetSelection.assets(SCORE_KEY),
                            description="Score one day's data quality (T+1) and write the reports.")  # fmt: skip
