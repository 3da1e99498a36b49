"""The platform's stages as plain functions over a PlatformConfig; the CLI and the Dagster assets both call these."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hutong.config import PlatformConfig
from hutong.dbt_runner import run_dbt
from warehouse import Warehouse, ensure_core

Progress = Callable[[str], None]


def today(config: PlatformConfig) -> date:
    """The current day in the platform's time zone (the default partition)."""
    return datetime.now(ZoneInfo(config.timezone)).date()


def reports_dir(config: PlatformConfig) -> Path:
    return config.data_dir / "reports"


def exports_dir(config: PlatformConfig) -> Path:
    return config.data_dir / "exports"


def warehouse(config: PlatformConfig, read_only: bool = False) -> Warehouse:
    return Warehouse(config.warehouse_url, read_only=read_only)


def init(config: PlatformConfig) -> None:
    """Create the warehouse schemas and core tables (safe to repeat)."""
    with warehouse(config) as wh:
        ensure_core(wh)


WAREHOUSE_SCHEMAS = ("raw", "ops", "mpi", "quality", "feeds", "staging", "cdr", "terminology", "health_record", "marts")


def reset_warehouse(config: PlatformConfig) -> None:
    """Drop every Hutong schema (used when the synthetic sources are regenerated)."""
    with warehouse(config) as wh:
        for schema in WAREHOUSE_SCHEMAS:
            wh.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@dataclass(frozen=True)
class SynthResult:
    out_dir: Path
    skipped: bool
    summary: Any = None


def synth(
    config: PlatformConfig, size: str, seed: int, *, force: bool = False, progress: Progress | None = None
) -> SynthResult:
    """Generate the synthetic county's sources, unless the same size/seed/config already produced them."""
    import synthetic

    out_dir = config.data_dir
    stamp = out_dir / "sources" / ".synthetic.json"
    config_hash = hashlib.sha256(config.path.read_bytes()).hexdigest()
    wanted = {"size": size, "seed": seed, "config_sha256": config_hash}
    if not force and stamp.is_file() and json.loads(stamp.read_text()) == wanted:
        return SynthResult(out_dir, skipped=True)
    summary = synthetic.generate(config, size=size, out_dir=out_dir, seed=seed, progress=progress)
    # A regenerated county is a new world: warehouse contents and watermarks of the old one no longer apply.
    reset_warehouse(config)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(wanted))
    return SynthResult(out_dir, skipped=False, summary=summary)


def synth_next_day(config: PlatformConfig, progress: Progress | None = None) -> Any:
    """Append the next day (new, updated and cancelled rows) to the generated synthetic county."""
    import synthetic

    return synthetic.increment(config, config.data_dir, progress=progress)


def ingest_his(config: PlatformConfig, *, full: bool = False, progress: Progress | None = None) -> list[Any]:
    """Pull every institution's HIS into raw (incremental from watermarks unless `full`)."""
    from connectors.his import ingest_all

    with warehouse(config) as wh:
        return ingest_all(wh, config.with_source("his"), full=full, progress=progress)


def ingest(
    config: PlatformConfig,
    *,
    orgs: list[str] | None = None,
    kinds: list[str] | None = None,
    day: date | None = None,
    until: date | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> list[Any]:
    """Ingest the chosen institutions and source kinds (default: everything configured) into raw."""
    from connectors.registry import ingest as ingest_sources

    with warehouse(config) as wh:
        return ingest_sources(wh, config, orgs=orgs, kinds=kinds, day=day, until=until, full=full, progress=progress)


def reference_tables(config: PlatformConfig) -> Any:
    """Write ops.institution (config) and ops.population (county.population_file) for the marts."""
    from hutong.reference import write_reference

    with warehouse(config) as wh:
        return write_reference(wh, config)


def transform(config: PlatformConfig, *, select: str | None = None, progress: Progress | None = None) -> str:
    """dbt build (seeds, staging, cdr and their tests) on the configured warehouse."""
    init(config)  # dbt sources over mpi/ops must exist
    reference_tables(config)  # ops.institution / ops.population: denominators of the marts
    args = ["build"] + (["--select", select] if select else [])
    return run_dbt(args, config.warehouse_url, progress=progress)


def check_quality(config: PlatformConfig, day: date, orgs: list[str] | None = None) -> tuple[list[Any], Path]:
    """Run the rule catalog for the institutions, score the day and write the reports (quality/stage.py)."""
    from quality.stage import run_day

    result = run_day(config, day, orgs)
    return result.outcomes, result.report


def export(
    config: PlatformConfig,
    day: date,
    *,
    feeds: list[str] | None = None,
    orgs: list[str] | None = None,
    progress: Progress | None = None,
) -> list[Any]:
    """Run the export feeds (marts/feeds/*.yaml; default all) for the institutions (default all), period `day`:
    quality-gated, identifiers per contract, packaged, recorded in feeds.delivery and sent to their targets."""
    from marts.run import run_feeds

    codes = [config.institution(o).org_code for o in orgs] if orgs else [i.org_code for i in config.institutions]
    with warehouse(config) as wh:
        return run_feeds(wh, codes, day.isoformat(), config.data_dir, feeds=feeds, progress=progress)
