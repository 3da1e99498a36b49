"""Dagster Definitions for Hutong: sources → raw → dbt (staging, cdr) → quality → export feeds.

No `from __future__ import annotations` here: Dagster inspects the real annotation types.
"""

import os
from collections.abc import Iterator, Mapping
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    ConfigurableResource,
    Definitions,
    MaterializeResult,
    MetadataValue,
    ScheduleDefinition,
    asset,
    define_asset_job,
    definitions,
    multi_asset,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from hutong import stages
from hutong.config import PlatformConfig, load_config
from hutong.dbt_runner import DBT_PROJECT_DIR, dbt_env, dbt_executable
from pipelines.manifest import ensure_manifest

SOURCES_HIS = AssetKey(["sources", "his"])
RAW_KEYS = {"patient": AssetKey(["raw", "his_patient"]), "encounter": AssetKey(["raw", "his_encounter"])}
CDR_KEYS = [AssetKey(["cdr", "cdr__patient"]), AssetKey(["cdr", "cdr__encounter"])]
QUALITY_KEY = AssetKey(["quality", "check_result"])
EXPORT_KEY = AssetKey(["feeds", "encounter_csv"])


class HutongConfig(ConfigurableResource):
    """The platform config file (empty: $HUTONG_CONFIG or the shipped county)."""

    config_path: str = ""

    def load(self) -> PlatformConfig:
        return load_config(self.config_path or None)


class HutongDbtTranslator(DagsterDbtTranslator):
    """Asset keys follow warehouse schemas: raw/his_patient, cdr/cdr__patient, terminology/code__sex."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        schema = dbt_resource_props.get("config", {}).get("schema") or "main"
        return AssetKey([schema, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return dbt_resource_props.get("config", {}).get("schema") or "dbt"


def build_definitions(config: PlatformConfig) -> Definitions:
    """Assemble the Definitions for one platform config."""
    os.environ.update(dbt_env(config.warehouse_url))
    manifest = ensure_manifest(config.warehouse_url)
    assets: list[Any] = []

    if config.synthetic:

        @asset(key=SOURCES_HIS, group_name="sources", description="Synthetic county HIS databases (demo sources).")
        def synthetic_sources(hutong: HutongConfig) -> MaterializeResult:
            cfg = hutong.load()
            assert cfg.synthetic is not None
            result = stages.synth(cfg, cfg.synthetic["size"], cfg.synthetic["seed"])
            return MaterializeResult(metadata={"out_dir": str(result.out_dir), "skipped_unchanged": result.skipped})

        assets.append(synthetic_sources)
    else:
        assets.append(AssetSpec(SOURCES_HIS, group_name="sources", description="Institution HIS databases."))

    @multi_asset(
        specs=[AssetSpec(key, deps=[SOURCES_HIS], group_name="raw") for key in RAW_KEYS.values()],
        name="his_raw",
        description="Incremental pull of every institution's HIS into raw (watermarks, dedupe, quarantine).",
    )
    def his_raw(context: AssetExecutionContext, hutong: HutongConfig) -> Iterator[MaterializeResult]:
        cfg = hutong.load()
        summaries = stages.ingest_his(cfg, progress=context.log.info)
        failed = [s for s in summaries if s.error]
        for s in failed:
            context.log.error(s.error)
        for key in RAW_KEYS.values():
            yield MaterializeResult(
                asset_key=key,
                metadata={
                    "rows_in": sum(s.rows_in for s in summaries),
                    "rows_loaded": sum(s.rows_loaded for s in summaries),
                    "rows_quarantined": sum(s.rows_quarantined for s in summaries),
                    "institutions_failed": MetadataValue.json([s.org_code for s in failed]),
                },
            )

    assets.append(his_raw)
    assets.append(AssetSpec(AssetKey(["mpi", "xref"]), group_name="mpi", description="EMPI cross-references."))

    @dbt_assets(manifest=manifest, dagster_dbt_translator=HutongDbtTranslator(), name="hutong_dbt")
    def hutong_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    assets.append(hutong_dbt)

    @asset(key=QUALITY_KEY, deps=CDR_KEYS, group_name="quality", description="Rule catalog run per institution.")
    def quality_checks(hutong: HutongConfig) -> MaterializeResult:
        cfg = hutong.load()
        outcomes, report = stages.check_quality(cfg, stages.today(cfg))
        return MaterializeResult(
            metadata={
                "report": MetadataValue.path(str(report)),
                "evaluated": sum(o.evaluated for o in outcomes),
                "failed": sum(o.failed for o in outcomes),
            }
        )

    assets.append(quality_checks)

    @asset(key=EXPORT_KEY, deps=[QUALITY_KEY], group_name="feeds", description="Encounter CSV feed per institution.")
    def encounter_csv(hutong: HutongConfig) -> MaterializeResult:
        cfg = hutong.load()
        deliveries = stages.export(cfg, stages.today(cfg))
        return MaterializeResult(
            metadata={
                "files": len(deliveries),
                "records": sum(d.record_count for d in deliveries),
                "held_back": sum(d.held_back for d in deliveries),
                "folder": MetadataValue.path(str(stages.exports_dir(cfg))),
            }
        )

    assets.append(encounter_csv)

    slice_job = define_asset_job("hutong_slice", selection=AssetSelection.all(), description="The whole platform.")
    his_sources = config.with_source("his")
    cron = str(his_sources[0].sources["his"].get("schedule", "30 0 * * *")) if his_sources else "30 0 * * *"
    daily = ScheduleDefinition(
        name="daily_t_plus_1", job=slice_job, cron_schedule=cron, execution_timezone=config.timezone
    )
    return Definitions(
        assets=assets,
        jobs=[slice_job],
        schedules=[daily],
        resources={
            "hutong": HutongConfig(config_path=str(config.path)),
            "dbt": DbtCliResource(
                project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
            ),
        },
    )


@definitions
def defs() -> Definitions:
    """Entry point for workspace.yaml: the platform file from $HUTONG_CONFIG or the shipped county."""
    return build_definitions(load_config())
