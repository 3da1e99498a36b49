"""HIS database connector: incremental keyset pulls from vendor tables into raw.his_<entity>.

Each vendor schema is described by a YAML mapping in `his_vendors/` (tables, keys, update-time and
soft-delete columns, column → standard raw name; `his_mapping.py`). Values land as received (text); decoding
local codes is dbt's job. Pages are read by `his_source.py` (connectorx on MariaDB/MySQL, SQLAlchemy
elsewhere), mapped in a reader thread while the previous page lands, and each page's rows, ledger batch and
watermark (ops.watermark per institution, source system and table) commit in one transaction, so an
interrupted run resumes where it stopped and a re-run adds nothing.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import polars as pl

from connectors.his_mapping import (
    EPOCH,
    VENDOR_DIR,
    WATERMARK,
    TableMapping,
    VendorMapping,
    entities,
    load_vendor,
    to_frame,
)
from connectors.his_source import open_reader, safe_url
from connectors.ledger import (
    Batch,
    QuarantineRecord,
    SourceError,
    now_local,
    record_failure,
    record_health,
    write_batches,
)
from warehouse import Warehouse, append_raw, ensure_core, ensure_raw_table

__all__ = ["SourceError", "TableMapping", "VendorMapping", "entities", "ingest_all", "ingest_institution",
           "load_vendor", "make_url_safe"]  # fmt: skip

SOURCE_KIND = "his"
# Unthrottled, consecutive pages land together, up to this many rows per transaction (each page keeps its own
# ledger batch): fewer commits, and DuckDB writes a large append straight to the file instead of the WAL first.
LAND_ROWS = int(os.environ.get("HUTONG_HIS_LAND_ROWS", 200_000))
Progress = Callable[[str], None]
T = TypeVar("T")


@dataclass
class HisRunSummary:
    """What one institution's HIS pull did."""

    org_code: str
    batches: int = 0
    rows_in: int = 0
    rows_loaded: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    error: str = ""


def _watermark(wh: Warehouse, org: str, system: str, table: str) -> tuple[str, str]:
    rows = wh.query(
        "SELECT watermark_ts, watermark_key FROM ops.watermark WHERE org_code = ? AND source_system = ? "
        "AND source_table = ?",
        [org, system, table],
    )
    return (rows[0][0], rows[0][1]) if rows else (EPOCH, "")


def _save_watermark(wh: Warehouse, org: str, system: str, table: str, ts: str, key: str, batch_id: str) -> None:
    wh.execute(
        "DELETE FROM ops.watermark WHERE org_code = ? AND source_system = ? AND source_table = ?", [org, system, table]
    )
    wh.execute(
        "INSERT INTO ops.watermark (org_code, source_system, source_table, watermark_ts, watermark_key, batch_id, "
        "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [org, system, table, ts, key, batch_id, now_local()],
    )


@dataclass
class _Page:
    """A page mapped onto its entity, with the window it covers and the watermark after it."""

    frame: pl.DataFrame
    quarantined: list[QuarantineRecord]
    rows_in: int
    window_start: str
    window_end: str
    ts: str
    key: str


def _mapped(pages: Iterator[pl.DataFrame], table: TableMapping, org: str, system: str, ts: str, key: str
            ) -> Iterator[_Page]:  # fmt: skip
    """Map each page onto its entity and note the (watermark, key) it ends on."""
    offset = 0
    for page in pages:
        start = f"{table.name}@{offset}" if table.snapshot else f"{table.name}@{ts}|{key}"
        offset += page.height
        if not table.snapshot:
            ts, key = page[WATERMARK][-1] or EPOCH, page[table.key][-1] or ""
        end = f"{table.name}@{offset}" if table.snapshot else f"{table.name}@{ts}|{key}"
        frame, quarantined = to_frame(page, table, org, system)
        yield _Page(frame, quarantined, page.height, start, end, ts, key)


def _grouped(pages: Iterator[_Page], rows: int) -> Iterator[list[_Page]]:
    """Consecutive pages gathered until they hold at least `rows` rows (or the table ends)."""
    group: list[_Page] = []
    for page in pages:
        group.append(page)
        if sum(p.rows_in for p in group) >= rows:
            yield group
            group = []
    if group:
        yield group


def _ahead(items: Iterator[T]) -> Iterator[T]:
    """Yield items while the next one is produced in a thread (the source read overlaps the warehouse write)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hutong-his-read") as pool:
        pending = pool.submit(next, items, None)
        try:
            while (item := pending.result()) is not None:
                pending = pool.submit(next, items, None)
                yield item
        finally:
            pending.cancel() or pending.exception()  # let a running read finish before the reader closes
            getattr(items, "close", lambda: None)()


def ingest_institution(
    wh: Warehouse,
    org_code: str,
    source_url: str,
    vendor: str,
    *,
    batch_size: int = 20_000,
    max_rows_per_second: float = 0,
    full: bool = False,
    progress: Progress | None = None,
    reader: str = "auto",
) -> HisRunSummary:
    """Pull every mapped table of one institution's HIS from its watermark onward (or from scratch if `full`).

    Each page of `batch_size` rows is one ledger batch and one transaction; `max_rows_per_second` caps the
    average read rate per table (each page is then a short query of its own); `reader` picks the page reader
    (`auto`: connectorx on MariaDB/MySQL, SQLAlchemy elsewhere).
    """
    summary = HisRunSummary(org_code)
    mapping = load_vendor(vendor)
    system = mapping.source_system
    throttled = max_rows_per_second > 0
    source = open_reader(org_code, source_url, reader, throttled=throttled)
    for spec in entities().values():
        ensure_raw_table(wh, spec["raw_table"], list(spec["columns"]))
    try:
        for table in mapping.tables:
            ts, key = (EPOCH, "") if full or table.snapshot else _watermark(wh, org_code, system, table.name)
            pages = _mapped(source.pages(table, ts, key, batch_size), table, org_code, system, ts, key)
            clock, rows_read = time.monotonic(), 0
            for group in _ahead(_grouped(pages, batch_size if throttled else max(batch_size, LAND_ROWS))):
                batches = _land(wh, table, group, org_code, system)
                for batch in batches:
                    summary.batches += 1
                    summary.rows_in += batch.rows_in
                    summary.rows_loaded += batch.rows_loaded
                    summary.rows_unchanged += batch.rows_unchanged
                    summary.rows_quarantined += batch.rows_quarantined
                    rows_read += batch.rows_in
                if progress:
                    progress(f"{org_code} {table.name}: {summary.rows_in} rows read, {summary.rows_loaded} new")
                if throttled:  # the table's average read rate stays under the limit
                    time.sleep(max(0.0, clock + rows_read / max_rows_per_second - time.monotonic()))
    finally:
        source.close()
    return summary


def _land(wh: Warehouse, table: TableMapping, group: list[_Page], org_code: str, system: str) -> list[Batch]:
    """Land a group of pages in one transaction: rows, one ledger batch per page, the watermark after the last."""
    batches = [Batch(org_code, SOURCE_KIND, system, table.entity, p.window_start, p.window_end, rows_in=p.rows_in,
                     quarantined=p.quarantined) for p in group]  # fmt: skip
    tagged = [p.frame.with_columns(pl.lit(b.batch_id, dtype=pl.String).alias("_batch_id"))
              for p, b in zip(group, batches, strict=True)]  # fmt: skip
    frame = pl.concat(tagged, rechunk=False)
    with wh.transaction():
        landed = append_raw(wh, entities()[table.entity]["raw_table"], frame, batches[0].batch_id,
                            batches[0].started_at)  # fmt: skip
        for batch in batches:
            batch.rows_loaded = landed.loaded_by_batch.get(batch.batch_id, 0)
            batch.rows_unchanged = batch.rows_in - batch.rows_quarantined - batch.rows_loaded
        write_batches(wh, batches)
        if not table.snapshot:
            last = group[-1]
            _save_watermark(wh, org_code, system, table.name, last.ts, last.key, batches[-1].batch_id)
    return batches


def make_url_safe(url: str) -> str:
    """A source URL with its password hidden."""
    return safe_url(url)


def ingest_all(
    wh: Warehouse,
    institutions: list[Any],
    *,
    full: bool = False,
    progress: Progress | None = None,
) -> list[HisRunSummary]:
    """Pull the HIS of every institution; one unreachable source is recorded and never stops the others."""
    ensure_core(wh)
    summaries = []
    today = now_local().date()
    for inst in institutions:
        source = inst.sources["his"]
        try:
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
            record_health(wh, inst.org_code, SOURCE_KIND, today, ok=True, rows_loaded=summary.rows_loaded)
        except SourceError as exc:
            summary = HisRunSummary(inst.org_code, error=str(exc))
            vendor = str(source.get("vendor"))
            system = load_vendor(vendor).source_system if (VENDOR_DIR / f"{vendor}.yaml").is_file() else "HIS"
            record_failure(wh, Batch(inst.org_code, SOURCE_KIND, system, "*"), str(exc))
            record_health(wh, inst.org_code, SOURCE_KIND, today, ok=False, rows_loaded=0, error=str(exc))
            if progress:
                progress(f"{inst.org_code} FAILED: {exc}")
        summaries.append(summary)
    return summaries
