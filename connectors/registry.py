"""Every source kind behind one call: `ingest(wh, config, orgs=..., kinds=..., day=...)`.

HIS databases are pulled by watermark (`connectors.his`); the other kinds are drop folders read by
`connectors.drop` with a per-kind file reader. One institution's source failing is recorded in the ledger and
never stops the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path

from connectors.drop import FileKind, FolderJob, SourceRun, ingest_folder, ingest_folders, record_source_failure
from connectors.ledger import SourceError, now_local
from hutong.config import SOURCE_KINDS, Institution, PlatformConfig, SourceConfig
from warehouse import Warehouse, ensure_core

Progress = Callable[[str], None]

# source kind -> module whose `make_kind(source: SourceConfig) -> FileKind` reads that kind's drop folder
FILE_KIND_MODULES = {
    "lis": "connectors.lis",
    "pacs": "connectors.pacs",
    "emr": "connectors.emr",
    "public_health": "connectors.public_health",
}

# the raw tables each source kind lands (Dagster asset keys raw/<table>; dbt sources read them)
RAW_TABLES = {
    "lis": ("lis_message", "lis_order", "lis_result"),
    "pacs": ("pacs_study", "pacs_report"),
    "emr": ("emr_document", "emr_section", "emr_fhir_resource"),
    "public_health": ("ph_health_record", "ph_hypertension_followup", "ph_diabetes_followup", "ph_vaccination",
                      "ph_elderly_checkup"),
}  # fmt: skip


def raw_tables(kind: str) -> tuple[str, ...]:
    """Raw tables a source kind lands (HIS: every entity of the vendor mappings)."""
    if kind == "his":
        from connectors.his import entities

        return tuple(spec["raw_table"] for spec in entities().values())
    return RAW_TABLES[kind]


def file_kind(kind: str, source: SourceConfig) -> FileKind:
    """The file reader for one institution's source of `kind`."""
    return importlib.import_module(FILE_KIND_MODULES[kind]).make_kind(source)


def _his(wh: Warehouse, inst: Institution, full: bool, progress: Progress | None) -> SourceRun:
    from connectors.his import ingest_institution

    source = inst.sources["his"]
    summary = ingest_institution(
        wh,
        inst.org_code,
        str(source.get("url")),
        str(source.get("vendor")),
        batch_size=int(source.get("batch_size", 20_000)),
        max_rows_per_second=float(source.get("max_rows_per_second", 0) or 0),
        full=full,
        progress=progress,
        reader=str(source.get("reader", "auto")),
    )
    run = SourceRun(inst.org_code, "his", rows_in=summary.rows_in, rows_loaded=summary.rows_loaded,
                    rows_unchanged=summary.rows_unchanged, rows_quarantined=summary.rows_quarantined)  # fmt: skip
    return run


def _source_system(kind: str, source: SourceConfig) -> str:
    if kind == "his":
        from connectors.his import VENDOR_DIR, load_vendor

        vendor = str(source.get("vendor"))
        return load_vendor(vendor).source_system if (VENDOR_DIR / f"{vendor}.yaml").is_file() else "HIS"
    return kind.upper() if kind != "public_health" else "PH"


def ingest_source(
    wh: Warehouse,
    config: PlatformConfig,
    inst: Institution,
    kind: str,
    *,
    day: date | None = None,
    until: date | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> SourceRun:
    """Ingest one institution's source of one kind; an unreadable source is recorded and returned with `error`."""
    source = inst.sources[kind]
    today = now_local(config.timezone).date()
    try:
        if kind == "his":
            run = _his(wh, inst, full, progress)
            from connectors.ledger import record_health

            record_health(wh, inst.org_code, kind, today, ok=True, rows_loaded=run.rows_loaded)
            return run
        folder = source.get("drop_dir")
        if not folder:
            raise SourceError(f"{inst.org_code}: {kind} source has no drop_dir")
        reader = file_kind(kind, source)
        return ingest_folder(wh, reader, inst.org_code, Path(folder), day=day, until=until, cutoff=config.cutoff,
                             progress=progress)  # fmt: skip
    except SourceError as exc:
        record_source_failure(wh, inst.org_code, kind, _source_system(kind, source), str(exc), day or today)
        if progress:
            progress(f"{inst.org_code} {kind} FAILED: {exc}")
        return SourceRun(inst.org_code, kind, error=str(exc))


def ingest(
    wh: Warehouse,
    config: PlatformConfig,
    *,
    orgs: Iterable[str] | None = None,
    kinds: Iterable[str] | None = None,
    day: date | None = None,
    until: date | None = None,
    full: bool = False,
    progress: Progress | None = None,
) -> list[SourceRun]:
    """Ingest the chosen institutions (codes or short names) and source kinds; default everything configured.

    `day` takes only files of that day; `until` files of days up to it (a Dagster day partition: "as of D").
    """
    ensure_core(wh)
    wanted_kinds = list(kinds) if kinds else list(SOURCE_KINDS)
    unknown = sorted(set(wanted_kinds) - set(SOURCE_KINDS))
    if unknown:
        raise SourceError(f"unknown source kind(s) {', '.join(unknown)}; known: {', '.join(SOURCE_KINDS)}")
    institutions = [config.institution(o) for o in orgs] if orgs else list(config.institutions)
    runs = []
    for kind in wanted_kinds:
        holders = [inst for inst in institutions if kind in inst.sources]
        if kind in FILE_KIND_MODULES:
            runs += _ingest_folders(wh, config, holders, kind, day=day, until=until, progress=progress)
            continue
        for inst in holders:
            runs.append(ingest_source(wh, config, inst, kind, day=day, until=until, full=full, progress=progress))
    return runs


def _ingest_folders(
    wh: Warehouse,
    config: PlatformConfig,
    institutions: list[Institution],
    kind: str,
    *,
    day: date | None,
    until: date | None,
    progress: Progress | None,
) -> list[SourceRun]:
    """Every institution's drop folder of one kind in one stream (small folders share transactions, parsing the
    next group overlaps landing this one); a folder that is missing fails its own source only."""
    jobs, runs = [], []
    for inst in institutions:
        folder = inst.sources[kind].get("drop_dir")
        try:
            reader = file_kind(kind, inst.sources[kind]) if folder and Path(str(folder)).is_dir() else None
        except SourceError:  # an unusable reader setting (e.g. a broken contract): recorded by ingest_source
            reader = None
        if reader is not None:
            jobs.append(FolderJob(reader, inst.org_code, Path(str(folder))))
        else:  # recorded as that source's failure
            runs.append(ingest_source(wh, config, inst, kind, day=day, until=until, progress=progress))
    if jobs:
        runs += ingest_folders(wh, jobs, day=day, until=until, cutoff=config.cutoff, progress=progress)
    return runs
