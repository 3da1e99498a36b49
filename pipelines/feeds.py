"""Dagster definitions of the serving side: analyst access, one asset per export feed (marts/feeds/*.yaml,
partitioned by day × institution, retried with backoff), the feeds' schedules (cron from each feed file) and the
late-institution sensor.

No `from __future__ import annotations` here: Dagster inspects the real annotation types.
"""

import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    Backoff,
    Failure,
    MaterializeResult,
    MetadataValue,
    MultiPartitionKey,
    MultiPartitionsDefinition,
    RetryPolicy,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    asset,
    schedule,
    sensor,
)

from hutong import stages
from hutong.config import PlatformConfig
from marts.feed_config import Feed, load_feeds

ACCESS_KEY = AssetKey(["analyst", "access"])
FEEDS_JOB, DAILY_JOB = "export_feeds", "hutong_daily"
FEED_RETRY = RetryPolicy(max_retries=3, delay=60, backoff=Backoff.EXPONENTIAL)


def feed_key(feed: Feed) -> AssetKey:
    return AssetKey(["feeds", feed.name])


def access_asset(deps: list[AssetKey]) -> Any:
    """Masked analyst views (both warehouses); PostgreSQL roles and row-level security, re-applied after dbt."""

    @asset(
        key=ACCESS_KEY,
        deps=deps,
        group_name="analyst",
        required_resource_keys={"hutong"},
        check_specs=[AssetCheckSpec("no_unmasked_identifiers", asset=ACCESS_KEY)],
        description="Masked views per audience (marts/audiences.yaml); PostgreSQL roles and row-level security.",
    )
    def analyst_access(context: AssetExecutionContext) -> Iterator[Any]:
        from marts.access import apply_access, pii_leaks

        cfg = context.resources.hutong.load()
        with stages.warehouse(cfg) as wh:
            result = apply_access(wh, [(i.org_code, i.short) for i in cfg.institutions])
            leaks = pii_leaks(wh, "analyst", sample=20000) + pii_leaks(wh, "research", sample=20000)
        yield MaterializeResult(
            metadata={
                "views": MetadataValue.json(result.views),
                "roles": len(result.roles),
                "rls_tables": result.rls_tables,
            }
        )
        yield AssetCheckResult(
            check_name="no_unmasked_identifiers",
            passed=not leaks,
            metadata={"leaks": MetadataValue.json([list(x) for x in leaks[:20]])},
        )

    return analyst_access


def feed_asset(feed: Feed, parts: MultiPartitionsDefinition, deps: list[AssetKey]) -> Any:
    """One institution's delivery of one feed for one day: gated, packaged, sent, recorded in feeds.delivery."""

    @asset(
        key=feed_key(feed),
        deps=deps,
        partitions_def=parts,
        group_name="feeds",
        retry_policy=FEED_RETRY,
        required_resource_keys={"hutong"},
        description=f"{feed.description} ({feed.format} → {feed.target}; {feed.standard})",
        metadata={
            "standard": feed.standard,
            "format": feed.format,
            "target": feed.target,
            "schedule": feed.schedule,
            "identifiers": MetadataValue.json({k: feed.policy(k) for k in ("name", "id_no", "phone", "address")}),
            "contract": feed.contract or "identifiers masked",
        },
    )
    def export_feed(context: AssetExecutionContext) -> MaterializeResult:
        cfg = context.resources.hutong.load()
        by_dim = context.partition_key.keys_by_dimension  # type: ignore[union-attr]
        inst = cfg.institution(by_dim["org"])
        runs = stages.export(cfg, date.fromisoformat(by_dim["day"]), feeds=[feed.name], orgs=[inst.org_code],
                             progress=context.log.info)  # fmt: skip
        run = runs[0]
        metadata = {
            "org_code": inst.org_code,
            "sent": run.sent,
            "unchanged": run.unchanged,
            "held_back": run.excluded,
            "deleted": run.deleted,
            "delivered": run.delivered,
            "unsent": run.failed + run.rejected,
            "gate_run": run.gate_run_id or "",
            "files": MetadataValue.json(run.files[:50]),
        }
        if run.failed:  # transient: Dagster retries with backoff; the ledger resends the same packages
            raise Failure(description=f"{feed.name} {inst.short}: {run.failed} package(s) not delivered yet",
                          metadata=metadata)  # fmt: skip
        return MaterializeResult(metadata=metadata)

    return export_feed


def feed_assets(parts: MultiPartitionsDefinition, deps: list[AssetKey]) -> list[Any]:
    return [feed_asset(f, parts, deps) for f in load_feeds()]


def feed_schedules(config: PlatformConfig) -> list[ScheduleDefinition]:
    """One schedule per distinct cron of the feed files: each feed runs for every institution, for yesterday."""
    by_cron: dict[str, list[Feed]] = {}
    for f in load_feeds():
        by_cron.setdefault(f.schedule, []).append(f)
    schedules = []
    for cron, feeds in sorted(by_cron.items()):
        keys = [feed_key(f) for f in feeds]
        name = "feeds_" + "_".join(part.replace("*", "x").replace("/", "-") for part in cron.split()[:2])

        @schedule(name=name, job_name=FEEDS_JOB, cron_schedule=cron, execution_timezone=config.timezone,
                  description=f"Export feeds {', '.join(f.name for f in feeds)} for yesterday")  # fmt: skip
        def run_feeds(
            context: ScheduleEvaluationContext, keys: list[AssetKey] = keys, cron: str = cron
        ) -> list[RunRequest]:
            day = (context.scheduled_execution_time.date() - timedelta(days=1)).isoformat()
            return [
                RunRequest(
                    run_key=f"{day}:{inst.short}:{cron}",
                    asset_selection=keys,
                    partition_key=MultiPartitionKey({"day": day, "org": inst.short}),
                )
                for inst in config.institutions
            ]

        schedules.append(run_feeds)
    return schedules


def late_institution_sensor(config: PlatformConfig, raw_keys: list[AssetKey], rebuild: list[AssetKey]) -> Any:
    """An institution whose data for day D landed after D's feeds ran (late files, a source back up) gets the
    transform and its feeds re-run for (D, institution): the feeds are incremental, so only the late records go."""
    feed_keys = [feed_key(f) for f in load_feeds()]

    @sensor(
        name="late_institutions",
        job_name=DAILY_JOB,
        minimum_interval_seconds=300,
        description="Re-run transform and feeds for an institution whose data arrived after its feeds ran",
    )
    def late(context: SensorEvaluationContext) -> Iterator[RunRequest]:
        cursor: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        today = stages.today(config)
        for back in (1, 2, 3):  # late data of the last three days
            day = (today - timedelta(days=back)).isoformat()
            for inst in config.institutions:
                pk = MultiPartitionKey({"day": day, "org": inst.short})
                fed = _latest(context, feed_keys, str(pk))
                landed = _latest(context, raw_keys, str(pk))
                marker = f"{day}:{inst.short}"
                if fed and landed and landed > fed and landed > cursor.get(marker, 0.0):
                    cursor[marker] = landed
                    yield RunRequest(run_key=f"late:{marker}:{landed}", partition_key=pk,
                                     asset_selection=rebuild + feed_keys)  # fmt: skip
        context.update_cursor(json.dumps(cursor))

    return late


def _latest(context: SensorEvaluationContext, keys: list[AssetKey], partition: str) -> float:
    """Newest materialization time of any of the assets for one partition (0 when never)."""
    newest = 0.0
    for key in keys:
        records = context.instance.fetch_materializations(
            AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1
        ).records
        if records:
            newest = max(newest, records[0].timestamp)
    return newest
