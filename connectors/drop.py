"""Front-end (前置机) drop folders: the shared driver behind the LIS, PACS, EMR and public-health file connectors.

A file kind says which files it reads, which day each belongs to and how one file becomes raw rows; this module
does the rest for every kind alike. Each file lands in one transaction together with its ledger rows
(`ops.ingest_batch`, `ops.ingest_file`, quarantined records), so a crash mid-file leaves nothing half-written and
a re-run picks the file up again. A file already landed with the same bytes is skipped; a changed file is read
again and only its new or changed rows are appended (raw dedupes on org + source key + hash).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from connectors.ledger import (
    Batch,
    QuarantineRecord,
    SourceError,
    now_local,
    record_failure,
    record_health,
    write_batch,
)
from warehouse import Warehouse, append_raw

Progress = Callable[[str], None]
LINEAGE = ("_source_key", "_source_updated_at", "_deleted", "_origin")
_DAY_IN_NAME = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")


@dataclass
class Parsed:
    """What one file became: rows per raw table, the count of records read, the records that could not land.

    `rows_in` counts records of the kind's primary entity (messages, documents, studies, rows of a CSV); each is
    either in `tables[primary]` or in `quarantined`. `rejected` set means the whole file was refused
    (error code, reason): it goes to quarantine as one record with its bytes.
    """

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    rows_in: int = 0
    quarantined: list[QuarantineRecord] = field(default_factory=list)
    rejected: tuple[str, str] | None = None
    data_day: date | None = None  # overrides the day taken from the file name
    primary: str | None = None  # the reconciled raw table when a kind reads files of several entities


class FileKind(Protocol):
    """One kind of dropped file (HL7 batch files, DICOM, CDA/FHIR documents, public-health exports)."""

    kind: str  # source kind in the platform file: lis / pacs / emr / public_health
    source_system: str  # _source_system of the rows it lands
    entity: str  # the primary raw table (reconciled in ops.ingest_batch)

    def files(self, folder: Path) -> Iterable[Path]: ...

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed: ...


@dataclass
class SourceRun:
    """What one institution's source did in one run."""

    org_code: str
    kind: str
    files_seen: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    files_rejected: int = 0
    rows_in: int = 0
    rows_loaded: int = 0
    rows_unchanged: int = 0
    rows_quarantined: int = 0
    error: str = ""
    days: dict[date, int] = field(default_factory=dict)  # data day -> minutes late (0 on time)
    day_rows: dict[date, int] = field(default_factory=dict)  # data day -> new rows landed

    def add(self, batch: Batch) -> None:
        self.rows_in += batch.rows_in
        self.rows_loaded += batch.rows_loaded
        self.rows_unchanged += batch.rows_unchanged
        self.rows_quarantined += batch.rows_quarantined


def day_in_name(rel: str) -> date | None:
    """The last YYYYMMDD in a relative path (folder `20261008/` or file `健康档案_20261008.csv`)."""
    found = None
    for match in _DAY_IN_NAME.finditer(rel):
        try:
            found = date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            continue
    return found


def minutes_late(data_day: date, arrived_at: datetime, cutoff: str = "24:00") -> int:
    """Minutes after the data day's cut-off (`HH:MM`, 24:00 = midnight ending the day) that the data arrived."""
    hours, minutes = (int(part) for part in cutoff.split(":"))
    deadline = datetime.combine(data_day, time()) + timedelta(hours=hours, minutes=minutes)
    return max(0, int((arrived_at - deadline).total_seconds() // 60))


def lineage_frame(
    rows: list[dict[str, Any]], columns: Iterable[str], org_code: str, source_system: str
) -> pl.DataFrame:
    """Rows (payload values plus `_source_key`, `_origin`, optional `_source_updated_at`/`_deleted`) as a raw batch.

    Payload values are stored as text, as received; missing columns are NULL.
    """
    columns = list(columns)
    data: dict[str, pl.Series] = {
        c: pl.Series(c, [None if r.get(c) is None else str(r[c]) for r in rows], dtype=pl.String) for c in columns
    }
    data["_org_code"] = pl.Series("_org_code", [org_code] * len(rows), dtype=pl.String)
    data["_source_system"] = pl.Series("_source_system", [source_system] * len(rows), dtype=pl.String)
    data["_source_key"] = pl.Series("_source_key", [r["_source_key"] for r in rows], dtype=pl.String)
    data["_source_updated_at"] = pl.Series(
        "_source_updated_at", [r.get("_source_updated_at") for r in rows], dtype=pl.Datetime("us")
    )
    data["_deleted"] = pl.Series("_deleted", [bool(r.get("_deleted")) for r in rows], dtype=pl.Boolean)
    data["_origin"] = pl.Series("_origin", [r["_origin"] for r in rows], dtype=pl.String)
    return pl.DataFrame(data)


def _already_loaded(wh: Warehouse, org_code: str, kind: str, rel: str, digest: str) -> bool:
    rows = wh.query(
        "SELECT 1 FROM ops.ingest_file WHERE org_code = ? AND source_kind = ? AND path = ? AND sha256 = ?",
        [org_code, kind, rel, digest],
    )
    return bool(rows)


def _record_file(
    wh: Warehouse, batch: Batch, rel: str, digest: str, size: int, arrived: datetime, day: date | None,
    status: str, reason: str = "",
) -> None:  # fmt: skip
    wh.execute(
        "DELETE FROM ops.ingest_file WHERE org_code = ? AND source_kind = ? AND path = ? AND sha256 = ?",
        [batch.org_code, batch.source_kind, rel, digest],
    )
    wh.execute(
        "INSERT INTO ops.ingest_file (org_code, source_kind, path, sha256, size_bytes, arrived_at, data_day, "
        "batch_id, status, reason, ingested_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [batch.org_code, batch.source_kind, rel, digest, size, arrived, day, batch.batch_id, status, reason or None,
         now_local()],
    )  # fmt: skip


def ingest_file(
    wh: Warehouse, kind: FileKind, org_code: str, folder: Path, path: Path, run: SourceRun, cutoff: str = "24:00"
) -> Batch | None:
    """Land one dropped file (or skip it when the same bytes were landed before)."""
    rel = path.relative_to(folder).as_posix()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    run.files_seen += 1
    if _already_loaded(wh, org_code, kind.kind, rel, digest):
        run.files_skipped += 1
        return None
    stat = path.stat()
    arrived = datetime.fromtimestamp(stat.st_mtime).replace(microsecond=0)
    try:
        parsed = kind.parse(path, rel, data, org_code)
    except Exception as exc:  # a parser bug or an unforeseen format must not stop the folder
        parsed = Parsed(rejected=("unreadable_file", f"{type(exc).__name__}: {exc}"))
    entity = parsed.primary or kind.entity
    batch = Batch(org_code, kind.kind, kind.source_system, entity, window_start=rel, window_end=digest[:16])
    day = parsed.data_day or day_in_name(rel)
    if parsed.rejected:
        code, reason = parsed.rejected
        batch.rows_in = 1
        batch.quarantined = [QuarantineRecord(rel, code, reason, data)]
        with wh.transaction():
            write_batch(wh, batch)
            _record_file(wh, batch, rel, digest, len(data), arrived, day, "rejected", f"{code}: {reason}")
        run.files_rejected += 1
    else:
        batch.rows_in = parsed.rows_in
        batch.quarantined = parsed.quarantined
        with wh.transaction():
            loaded = 0
            for table, frame in parsed.tables.items():
                result = append_raw(wh, table, frame, batch.batch_id, batch.started_at)
                if table == entity:
                    loaded = result.rows_loaded
                    batch.rows_unchanged = result.rows_unchanged
            batch.rows_loaded = loaded
            primary = parsed.tables.get(entity)
            landed = 0 if primary is None else primary.height
            if landed + batch.rows_quarantined != batch.rows_in:
                raise AssertionError(
                    f"{kind.kind} parser for {rel}: {batch.rows_in} records read but {landed} rows and "
                    f"{batch.rows_quarantined} quarantined"
                )
            write_batch(wh, batch)
            _record_file(wh, batch, rel, digest, len(data), arrived, day, "loaded")
        run.files_loaded += 1
    run.add(batch)
    if day is not None:
        run.days[day] = max(run.days.get(day, 0), minutes_late(day, arrived, cutoff))
        run.day_rows[day] = run.day_rows.get(day, 0) + batch.rows_loaded
    return batch


def ingest_folder(
    wh: Warehouse,
    kind: FileKind,
    org_code: str,
    folder: Path,
    *,
    day: date | None = None,
    cutoff: str = "24:00",
    progress: Progress | None = None,
) -> SourceRun:
    """Land every new file of one institution's drop folder (only those of `day` when given)."""
    run = SourceRun(org_code, kind.kind)
    if not folder.is_dir():
        raise SourceError(f"{org_code}: {kind.kind} drop folder {folder} does not exist")
    for path in sorted(kind.files(folder)):
        rel = path.relative_to(folder).as_posix()
        if day is not None and day_in_name(rel) not in (day, None):
            continue
        ingest_file(wh, kind, org_code, folder, path, run, cutoff)
        if progress and run.files_seen % 200 == 0:
            progress(f"{org_code} {kind.kind}: {run.files_seen} files, {run.rows_loaded} new rows")
    for data_day, late in sorted(run.days.items()):
        record_health(wh, org_code, kind.kind, data_day, ok=True, rows_loaded=run.day_rows[data_day], late_minutes=late)
    return run


def record_source_failure(wh: Warehouse, org_code: str, kind: str, source_system: str, error: str, day: date) -> None:
    """Record that a source could not be read at all (one failed batch and a failed health mark for the day)."""
    record_failure(wh, Batch(org_code, kind, source_system, "*"), error)
    record_health(wh, org_code, kind, day, ok=False, rows_loaded=0, error=error)
