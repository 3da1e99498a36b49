"""Dagster Definitions for Hutong: sources → raw → dbt (staging, cdr) → quality → export feeds.

No `from __future__ import annotations` here: Dagster inspects the real annotation types.
"""

import json
import os
from collections.abc import Iterator, Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    AssetSpec,
    Backoff,
    ConfigurableResource,
    DailyPartitionsDefinition,
    Definitions,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorDefinition,
    SensorEvaluationContext,
    StaticPartitionsDefinition,
    asset,
    define_asset_job,
    definitions,
    in_process_executor,
    multi_asset,
    schedule,
    sensor,
)
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from connectors.registry import raw_tables
from hutong import stages
from hutong.config import SOURCE_KINDS, PlatformConfig, load_config
from hutong.dbt_runner import DBT_PROJECT_DIR, dbt_env, dbt_executable
from pipelines.feeds import (
    ACCESS_KEY,
    DAILY_JOB,
    FEEDS_JOB,
    access_asset,
    feed_assets,
    feed_schedules,
    late_institution_sensor,
)
from pipelines.manifest import ensure_manifest
from pipelines.mpi import mpi_asset
from pipelines.quality import SCORE_KEY, quality_definitions_parts, quality_score_job
from pipelines.reference import reference_asset

CDR_KEYS = [AssetKey(["cdr", "cdr__patient"]), AssetKey(["cdr", "cdr__encounter"])]
QUALITY_KEY = AssetKey(["quality", "check_result"])
MPI_KEY = AssetKey(["mpi"])
INGEST_JOB, TRANSFORM_JOB, SYNTH_JOB = "ingest_sources", "hutong_transform", "synthetic_county"


def source_key(kind: str) -> AssetKey:
    return AssetKey(["sources", kind])


def partitions(config: PlatformConfig) -> MultiPartitionsDefinition:
    """Raw assets are partitioned by day ("as of D": everything that arrived for days up to D) and institution."""
    start = str(config.county.get("partitions_start", "2026-01-01")) if config.county else "2026-01-01"
    return MultiPartitionsDefinition(
        {
            "day": DailyPartitionsDefinition(start_date=start, timezone=config.timezone, end_offset=1),
            "org": StaticPartitionsDefinition([i.short for i in config.institutions]),
        }
    )


class HutongConfig(ConfigurableResource):
    """The platform config file (empty: $HUTONG_CONFIG or the shipped county)."""

    config_path: str = ""

    def load(self) -> PlatformConfig:
        return load_config(self.config_path or None)


class HutongDbtTranslator(DagsterDbtTranslator):
    """Asset keys follow warehouse schemas: raw/his_patient, cdr/cdr__patient, terminology/code__sex."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            if dbt_resource_props["source_name"] == "mpi":  # mpi.xref / mpi.person are written by the MPI asset
                return MPI_KEY
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

    kinds = [k for k in SOURCE_KINDS if config.with_source(k)]
    parts = partitions(config)
    if config.synthetic:

        @multi_asset(
            specs=[AssetSpec(source_key(k), group_name="sources") for k in kinds],
            name="synthetic_sources",
            description="The synthetic county's source systems (HIS databases, LIS/PACS/EMR/public-health folders).",
        )
        def synthetic_sources(hutong: HutongConfig) -> Iterator[MaterializeResult]:
            cfg = hutong.load()
            assert cfg.synthetic is not None
            result = stages.synth(cfg, cfg.synthetic["size"], cfg.synthetic["seed"])
            for k in kinds:
                metadata = {"out_dir": str(result.out_dir), "skipped_unchanged": result.skipped}
                yield MaterializeResult(asset_key=source_key(k), metadata=metadata)

        assets.append(synthetic_sources)
    else:
        assets.extend(AssetSpec(source_key(k), group_name="sources", description=f"Institution {k} sources.")
                      for k in kinds)  # fmt: skip
    assets.extend(_raw_asset(kind, parts) for kind in kinds)

    assets.append(mpi_asset([AssetKey(["raw", t]) for k in kinds for t in raw_tables(k)]))

    @dbt_assets(manifest=manifest, dagster_dbt_translator=HutongDbtTranslator(), name="hutong_dbt")
    def hutong_dbt(context: AssetExecutionContext, dbt: DbtCliResource):
        yield from dbt.cli(["build"], context=context).stream()

    assets.append(hutong_dbt)
    assets.append(reference_asset())

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

    assets.append(access_asset([QUALITY_KEY]))
    assets.extend(feed_assets(parts, [QUALITY_KEY, ACCESS_KEY]))

    raw_keys = [AssetKey(["raw", t]) for k in kinds for t in raw_tables(k)]
    assets.extend(quality_definitions_parts(config, raw_keys, [QUALITY_KEY]))  # checks on raw, daily quality/score
    raw_selection = AssetSelection.assets(*raw_keys)
    ingest_job = define_asset_job(INGEST_JOB, selection=raw_selection,
                                  description="Land one institution's sources in raw, as of one day.")  # fmt: skip
    feeds = AssetSelection.groups("feeds")
    daily_score = AssetSelection.assets(SCORE_KEY)  # partitioned by day only: its own job (quality_score_daily)
    transform_job = define_asset_job(
        TRANSFORM_JOB,
        selection=AssetSelection.all() - raw_selection - AssetSelection.groups("sources") - feeds - daily_score,
        description="dbt (staging, cdr, ...), quality rules and report, analyst access.",
    )
    feeds_job = define_asset_job(FEEDS_JOB, selection=feeds, partitions_def=parts,
                                 description="Export feeds of one institution for one day.")  # fmt: skip
    daily_job = define_asset_job(
        DAILY_JOB,
        selection=AssetSelection.all() - AssetSelection.groups("sources") - daily_score,
        partitions_def=parts,
        op_retry_policy=RetryPolicy(max_retries=2, delay=30, backoff=Backoff.EXPONENTIAL),
        description="End to end for one institution and day: ingest, dbt, quality, access, feeds.",
    )
    jobs = [ingest_job, transform_job, feeds_job, daily_job, quality_score_job(config)]
    if config.synthetic:
        jobs.append(define_asset_job(SYNTH_JOB, selection=AssetSelection.groups("sources"),
                                     description="Generate the synthetic county's sources."))  # fmt: skip
    his_sources = config.with_source("his")
    cron = str(his_sources[0].sources["his"].get("schedule", "30 0 * * *")) if his_sources else "30 0 * * *"
    return Definitions(
        assets=assets,
        jobs=jobs,
        schedules=[daily_ingest_schedule(config, cron), daily_transform_schedule(config), *feed_schedules(config)],
        sensors=[front_end_sensor(config), late_institution_sensor(config, raw_keys, [QUALITY_KEY, ACCESS_KEY])],
        executor=in_process_executor if config.warehouse_url.startswith("duckdb") else None,
        resources={
            "hutong": HutongConfig(config_path=str(config.path)),
            "dbt": DbtCliResource(
                project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR), dbt_executable=dbt_executable()
            ),
        },
    )


def _raw_asset(kind: str, parts: MultiPartitionsDefinition) -> Any:
    """One multi-asset per source kind: its raw tables, partitioned by day and institution."""
    keys = [AssetKey(["raw", t]) for t in raw_tables(kind)]

    @multi_asset(
        specs=[AssetSpec(key, deps=[source_key(kind)], group_name="raw", partitions_def=parts) for key in keys],
        name=f"raw_{kind}",
        partitions_def=parts,
        description=f"Land one institution's {kind} source in raw (new data only; bad input quarantined).",
    )
    def raw_kind(context: AssetExecutionContext, hutong: HutongConfig) -> Iterator[MaterializeResult]:
        cfg = hutong.load()
        by_dim = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
        inst = cfg.institution(by_dim["org"])
        if kind not in inst.sources:
            for key in keys:
                yield MaterializeResult(asset_key=key, metadata={"configured": False})
            return
        run = stages.ingest(cfg, orgs=[inst.org_code], kinds=[kind], until=date.fromisoformat(by_dim["day"]),
                            progress=context.log.info)[0]  # fmt: skip
        if run.error:
            raise Failure(description=f"{inst.short} {kind}: {run.error}", metadata={"org_code": inst.org_code})
        for key in keys:
            yield MaterializeResult(
                asset_key=key,
                metadata={
                    "org_code": inst.org_code,
                    "records_read": run.rows_in,
                    "records_new": run.rows_loaded,
                    "records_quarantined": run.rows_quarantined,
                    "files_loaded": run.files_loaded,
                    "files_rejected": run.files_rejected,
                },
            )

    return raw_kind


def daily_ingest_schedule(config: PlatformConfig, cron: str) -> ScheduleDefinition:
    """T+1: shortly after midnight, land every institution's sources as of yesterday."""

    @schedule(name="daily_t_plus_1", job_name=INGEST_JOB, cron_schedule=cron, execution_timezone=config.timezone)
    def daily(context: ScheduleEvaluationContext) -> list[RunRequest]:
        day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
        return [
            RunRequest(run_key=f"{day}:{inst.short}", partition_key=MultiPartitionKey({"day": day, "org": inst.short}))
            for inst in config.institutions
        ]

    return daily


def daily_transform_schedule(config: PlatformConfig) -> ScheduleDefinition:
    """After the T+1 pulls: dbt, quality and export."""
    return ScheduleDefinition(name="daily_transform", job_name=TRANSFORM_JOB, cron_schedule="30 2 * * *",
                              execution_timezone=config.timezone)  # fmt: skip


def front_end_sensor(config: PlatformConfig) -> SensorDefinition:
    """Watch the front-end (前置机) drop folders: new or changed files request their institution's partition."""

    @sensor(name="front_end_folders", job_name=INGEST_JOB, minimum_interval_seconds=120)
    def front_end(context: SensorEvaluationContext) -> Iterator[RunRequest]:
        from connectors.drop import day_in_name
        from connectors.registry import FILE_KIND_MODULES, file_kind

        cursor: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        today = stages.today(config)
        for inst in config.institutions:
            newest, days = cursor.get(inst.short, 0.0), []
            for kind in FILE_KIND_MODULES:
                source = inst.sources.get(kind)
                folder = Path(str(source.get("drop_dir"))) if source else None
                if folder is None or not folder.is_dir():
                    continue
                for path in file_kind(kind, source).files(folder):
                    mtime = path.stat().st_mtime
                    if mtime > cursor.get(inst.short, 0.0):
                        newest = max(newest, mtime)
                        days.append(day_in_name(path.relative_to(folder).as_posix()) or today)
            if days:
                day = min(max(days), today).isoformat()
                cursor[inst.short] = newest
                yield RunRequest(run_key=f"{inst.short}:{day}:{newest}",
                                 partition_key=MultiPartitionKey({"day": day, "org": inst.short}))  # fmt: skip
        context.update_cursor(json.dumps(cursor))

    return front_end


@definitions
def defs() -> Definitions:
    """Entry point for workspace.yaml: the platform file from $HUTONG_CONFIG or the shipped county."""
    return build_definitions(load_config())
