"""`hutong demo`: run the whole platform job in-process under a local Dagster instance, then say where to look."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import redirect_stdout
from datetime import date, timedelta
from typing import Any

from dagster import DagsterInstance, MultiPartitionKey

from hutong import stages
from hutong.config import PlatformConfig
from pipelines.definitions import INGEST_JOB, SYNTH_JOB, TRANSFORM_JOB, build_definitions
from pipelines.feeds import FEEDS_JOB

DAGSTER_UI = "http://127.0.0.1:3000"
INSTANCE_YAML = "concurrency:\n  runs:\n    max_concurrent_runs: 1\n"


def dagster_home(config: PlatformConfig) -> str:
    """A DAGSTER_HOME under the data folder so `make serve` shows the demo's runs."""
    home = config.data_dir / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    instance = home / "dagster.yaml"
    if not instance.is_file() or not instance.read_text(encoding="utf-8").strip():
        # The embedded DuckDB warehouse takes one writer at a time: queue runs (sensor, schedules) one by one.
        instance.write_text(INSTANCE_YAML, encoding="utf-8")
    return str(home)


def _root_cause(event: Any) -> str:
    """The innermost error message of a failed step (not Dagster's wrapper)."""
    error = event.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.message.strip().splitlines()[0]


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _check(result: Any, what: str) -> None:
    if not result.success:
        failures = [f"{event.step_key}: {_root_cause(event)}" for event in result.all_events if event.is_step_failure]
        raise RuntimeError(f"{what} failed: " + "; ".join(failures or ["see the Dagster UI"]))


def run_platform(
    config: PlatformConfig,
    instance: DagsterInstance | None = None,
    day: date | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[Any]:
    """Run the platform's jobs in-process: synthetic sources (if any), one ingest run per institution partition
    (as of `day`, default yesterday), then dbt/quality/export. Returns the Dagster results in order."""
    defs = build_definitions(config)
    as_of = (day or stages.today(config) - timedelta(days=1)).isoformat()
    results = []
    if config.synthetic:
        if progress:
            progress("generating the synthetic county (skipped when unchanged)")
        results.append(defs.resolve_job_def(SYNTH_JOB).execute_in_process(instance=instance, raise_on_error=False,
                                                                          run_config=QUIET))  # fmt: skip
        _check(results[-1], SYNTH_JOB)
    ingest = defs.resolve_job_def(INGEST_JOB)
    for inst in config.institutions:
        if progress:
            progress(f"ingest_sources partition {as_of}|{inst.short} ({inst.name})")
        key = MultiPartitionKey({"day": as_of, "org": inst.short})
        results.append(ingest.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                                 run_config=QUIET))  # fmt: skip
        _check(results[-1], f"ingest {inst.short}")
    if progress:
        progress("hutong_transform: dbt build, quality rules and report, analyst access")
    results.append(defs.resolve_job_def(TRANSFORM_JOB).execute_in_process(instance=instance, raise_on_error=False,
                                                                          run_config=QUIET))  # fmt: skip
    _check(results[-1], TRANSFORM_JOB)
    feeds = defs.resolve_job_def(FEEDS_JOB)
    export_day = stages.today(config).isoformat() if day is None else as_of
    for inst in config.institutions:
        if progress:
            progress(f"export_feeds partition {export_day}|{inst.short}")
        key = MultiPartitionKey({"day": export_day, "org": inst.short})
        results.append(feeds.execute_in_process(instance=instance, partition_key=key, raise_on_error=False,
                                                run_config=QUIET))  # fmt: skip
        _check(results[-1], f"feeds {inst.short}")
    return results


def run_demo(config: PlatformConfig, progress: Callable[[str], None] | None = None) -> list[str]:
    """Run every job of the platform in-process; return the lines telling the user where outputs are."""
    os.environ["DAGSTER_HOME"] = dagster_home(config)
    if progress:
        progress("loading Dagster definitions (dbt parse on first run)")
    log_path = config.data_dir / "logs" / "demo.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with DagsterInstance.get() as instance, log_path.open("w", encoding="utf-8") as log, redirect_stdout(log):
        result = run_platform(config, instance, progress=progress)[-1]
    day = stages.today(config)
    with stages.warehouse(config, read_only=True) as wh:
        raw_rows = sum(wh.count(f"raw.{t}") for t in wh.tables("raw"))
        patients = wh.count("cdr.cdr__patient")
        encounters = wh.count("cdr.cdr__encounter")
        quarantined = wh.count("ops.quarantine")
        exported = int(wh.scalar("SELECT coalesce(sum(record_count), 0) FROM feeds.delivery WHERE period = ?",
                                 [day.isoformat()]))  # fmt: skip
        ledger = wh.query("SELECT status, count(*), coalesce(sum(record_count), 0) FROM feeds.delivery "
                          "GROUP BY status ORDER BY status")  # fmt: skip
        held = wh.scalar("SELECT count(DISTINCT record_key) FROM feeds.exclusion WHERE resolved_at IS NULL")
    target = stages.warehouse(config).target
    deliveries = ", ".join(f"{n} {s} ({r} records)" for s, n, r in ledger) or "none"
    return [
        f"Hutong demo finished (Dagster run {result.run_id}).",
        f"  warehouse      {target.display}  ({raw_rows} raw rows, {patients} cdr patients, "
        f"{encounters} cdr encounters, {quarantined} quarantined)",
        f"  quality report {stages.reports_dir(config) / 'quality' / day.isoformat() / 'region.html'}",
        f"  export files   {stages.exports_dir(config) / 'encounter_csv' / day.isoformat()}  ({exported} records)",
        f"  feeds outbox   {config.data_dir / 'outbox'}  (per target: province-fhir, document-registry, "
        "city-platform; FHIR ndjson, CDA zip sets, registration CSV/JSONL)",
        f"  feeds ledger   feeds.delivery: {deliveries}; feeds.exclusion: {held} records held back with reasons",
        f"  step log       {log_path}",
        f"  Dagster UI     make serve, then open {DAGSTER_UI} (DAGSTER_HOME={os.environ['DAGSTER_HOME']})",
        "  SQL            .venv/bin/python -c \"import duckdb; print(duckdb.connect('"
        f"{target.path}', read_only=True).sql('select * from cdr.cdr__encounter limit 5'))\"",
    ]
