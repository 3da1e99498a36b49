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
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from connectors.ledger import (
    Batch,
    HealthMark,
    QuarantineRecord,
    SourceError,
    now_local,
    record_failure,
    record_health,
    record_health_of_sources,
    write_batches,
)
from warehouse import Warehouse, append_raw

Progress = Callable[[str], None]
LINEAGE = ("_source_key", "_source_updated_at", "_deleted", "_origin")
GROUP_BYTES = 16 << 20  # input bytes parsed in one go (and landed together) when many files land together
GROUP_FILES = 500
# input bytes landed per transaction: several parsed groups share one. DuckDB writes a table's rows compressed to
# the file as each row group (122,880 rows) fills; only the rest of a transaction goes through the WAL and is
# rewritten at checkpoints. A transaction of 256 MB fills whole row groups even of raw.lis_message (≈1 KB a row),
# so commits and the closing checkpoint cost little (LIS files of the medium county: 24.7 k msg/s against 22.0 k
# at 32 MB). Memory stays per group: the transaction holds at most a partly filled row group per table, never the
# parsed batches (see `warehouse.load.over_arrow`); a crash re-reads at most this much input on the next run.
TX_BYTES = 256 << 20
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
    rows_out: int | None = None  # primary rows of this file when they are held in a `ParsedGroup`'s tables


@dataclass
class ParsedGroup:
    """Several files parsed in one pass (`FileKind.parse_group`): per file its count, quarantine and rejection
    (`Parsed` with `rows_out` and no tables), the rows of all files in one frame per raw table (column `_file` =
    the file's index in the group) — no frame per file to build, split and concatenate again."""

    files: list[Parsed]
    tables: dict[str, pl.DataFrame]


class FileKind(Protocol):
    """One kind of dropped file (HL7 batch files, DICOM, CDA/FHIR documents, public-health exports)."""

    kind: str  # source kind in the platform file: lis / pacs / emr / public_health
    source_system: str  # _source_system of the rows it lands
    entity: str  # the primary raw table (reconciled in ops.ingest_batch)

    def files(self, folder: Path) -> Iterable[Path]: ...

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed: ...


# A kind may also offer `parse_many(files: [(path, rel, data)], org_code) -> [Parsed]` (one institution's files at
# once) or `parse_group(files: [(path, rel, data, org_code)]) -> ParsedGroup` (files of several institutions, rows
# kept in one frame per table); kinds that compare equal (same reader settings) share groups across institutions.


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


def frames_by_file(
    rows: list[dict[str, Any]], columns: Iterable[str], files: int, org_code: str, source_system: str
) -> list[pl.DataFrame]:
    """One raw frame per file from rows of many files (each row carries `_file`, its file's index): built once,
    split in Rust — much cheaper than a frame per small file."""
    columns = list(columns)
    frame = lineage_frame(rows, [*columns, "_file"], org_code, source_system)
    frame = frame.with_columns(pl.col("_file").cast(pl.Int64))
    parts = frame.partition_by("_file", as_dict=True, include_key=False)
    empty = frame.clear().drop("_file")
    return [parts.get((index,), empty) for index in range(files)]


def loaded_files(wh: Warehouse, org_code: str, kind: str) -> set[tuple[str, str]]:
    """(path, sha256) of every file of this institution and kind already landed or rejected."""
    rows = wh.query("SELECT path, sha256 FROM ops.ingest_file WHERE org_code = ? AND source_kind = ?", [org_code, kind])
    return {(path, digest) for path, digest in rows}


def _record_files(wh: Warehouse, group: list[_Pending]) -> None:
    """One ops.ingest_file row per file of the group (replacing a previous row for the same bytes)."""
    now = now_local()
    by_source: dict[tuple[str, str], list[str]] = {}
    for item in group:
        by_source.setdefault((item.batch.org_code, item.batch.source_kind), []).append(item.digest)
    for (org_code, kind), digests in by_source.items():  # a row for the same bytes exists only after a concurrent run
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            wh.execute(
                f"DELETE FROM ops.ingest_file WHERE org_code = ? AND source_kind = ? AND sha256 IN "
                f"({', '.join('?' for _ in chunk)})",
                [org_code, kind, *chunk],
            )
    frame = pl.DataFrame(
        {
            "org_code": [i.batch.org_code for i in group],
            "source_kind": [i.batch.source_kind for i in group],
            "path": [i.rel for i in group],
            "sha256": [i.digest for i in group],
            "size_bytes": pl.Series([i.size for i in group], dtype=pl.Int64),
            "arrived_at": pl.Series([i.arrived for i in group], dtype=pl.Datetime("us")),
            "data_day": pl.Series([i.day for i in group], dtype=pl.Date),
            "batch_id": [i.batch.batch_id for i in group],
            "status": ["rejected" if i.parsed.rejected else "loaded" for i in group],
            "reason": pl.Series(
                [": ".join(i.parsed.rejected) if i.parsed.rejected else None for i in group], dtype=pl.String
            ),
            "ingested_at": pl.Series([now] * len(group), dtype=pl.Datetime("us")),
        }
    )
    wh.load("ops.ingest_file", frame)


@dataclass
class FolderJob:
    """One institution's drop folder of one kind, read by `kind`."""

    kind: FileKind
    org_code: str
    folder: Path


@dataclass
class _File:
    """A dropped file read from disk, not yet parsed."""

    job: FolderJob
    path: Path
    rel: str
    digest: str
    arrived: datetime
    data: bytes


@dataclass
class _Pending:
    """A file read and parsed, waiting to land with the others of its group."""

    job: FolderJob
    batch: Batch
    rel: str
    digest: str
    size: int
    arrived: datetime
    day: date | None
    parsed: Parsed
    data: bytes


def _read(job: FolderJob, path: Path, rel: str, run: SourceRun, seen: set[tuple[str, str]]) -> _File | None:
    """Read one file (`rel` its path in the folder), or None when the same bytes were landed before (`seen`)."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    run.files_seen += 1
    if (rel, digest) in seen:
        run.files_skipped += 1
        return None
    arrived = datetime.fromtimestamp(path.stat().st_mtime).replace(microsecond=0)
    return _File(job, path, rel, digest, arrived, data)


@dataclass
class _Found:
    """A dropped file listed for a group: read, checked against the files landed before (`seen`) and parsed in the
    parse thread, so the landing thread never waits for the disk or for hashing."""

    job: FolderJob
    path: Path
    rel: str
    seen: set[tuple[str, str]]
    size: int  # on disk, when listed


def _read_group(found: list[_Found], runs: dict[tuple[str, str], SourceRun]) -> _Group:
    """Read the listed files (skipping those landed before with the same bytes) and parse the rest as a group."""
    files = [_read(f.job, f.path, f.rel, runs[(f.job.org_code, f.job.kind.kind)], f.seen) for f in found]
    kept = [file for file in files if file is not None]
    return _parse_group(kept) if kept else _Group([], {})


@dataclass
class _Group:
    """Files parsed together, ready to land: their ledger items and the raw rows of all (with `_batch_id`)."""

    items: list[_Pending]
    tables: dict[str, pl.DataFrame]


def _parse_one(kind: FileKind, org_code: str, file: _File) -> Parsed:
    try:
        return kind.parse(file.path, file.rel, file.data, org_code)
    except Exception as exc:  # a parser bug or an unforeseen format must not stop the folder
        return Parsed(rejected=("unreadable_file", f"{type(exc).__name__}: {exc}"))


def _parse_files(kind: FileKind, files: list[_File]) -> list[Parsed]:
    """Per-file results: one institution's files at once when the kind can (`parse_many`), else one by one."""
    many = getattr(kind, "parse_many", None)
    out: list[Parsed] = []
    start = 0
    while start < len(files):
        org_code = files[start].job.org_code
        end = start
        while end < len(files) and files[end].job.org_code == org_code:
            end += 1
        chunk = files[start:end]
        results: list[Parsed] | None = None
        if many is not None:
            try:
                results = many([(f.path, f.rel, f.data) for f in chunk], org_code)
            except Exception:  # fall back to file by file, which isolates the file that breaks
                results = None
        out += results if results is not None else [_parse_one(kind, org_code, f) for f in chunk]
        start = end
    return out


def _parse_group(files: list[_File]) -> _Group:
    """Parse a group of files of one kind (possibly of several institutions) into ledger items and raw rows."""
    kind = files[0].job.kind
    grouped = getattr(kind, "parse_group", None)
    result: ParsedGroup | None = None
    if grouped is not None:
        try:
            result = grouped([(f.path, f.rel, f.data, f.job.org_code) for f in files])
        except Exception:  # fall back to file by file, which isolates the file that breaks
            result = None
    if result is None:
        items = [_settle(f, parsed) for f, parsed in zip(files, _parse_files(kind, files), strict=True)]
        parts: dict[str, list[pl.DataFrame]] = {}
        for item in items:
            for table, frame in ({} if item.parsed.rejected else item.parsed.tables).items():
                if frame.height:
                    parts.setdefault(table, []).append(
                        frame.with_columns(pl.lit(item.batch.batch_id).alias("_batch_id"))
                    )
        tables = {t: pl.concat(p, how="diagonal") if len(p) > 1 else p[0] for t, p in parts.items()}
        return _Group(items, tables)
    items = [_settle(f, parsed) for f, parsed in zip(files, result.files, strict=True)]
    batch_ids = pl.Series("_batch_id", [item.batch.batch_id for item in items], dtype=pl.String)
    refused = [index for index, item in enumerate(items) if item.parsed.rejected]
    tables = {}
    for table, frame in result.tables.items():
        if refused:
            frame = frame.filter(~pl.col("_file").is_in(refused))
        if frame.height:
            tables[table] = frame.with_columns(batch_ids.gather(frame.get_column("_file"))).drop("_file")
    return _Group(items, tables)


def _settle(file: _File, parsed: Parsed) -> _Pending:
    """Check a parse result reconciles and make its ledger batch (a whole-file rejection is one record)."""
    kind, org_code = file.job.kind, file.job.org_code
    entity = parsed.primary or kind.entity
    if not parsed.rejected:
        primary = parsed.tables.get(entity)
        landed = parsed.rows_out if parsed.rows_out is not None else 0 if primary is None else primary.height
        if landed + len(parsed.quarantined) != parsed.rows_in:
            reason = (f"{kind.kind} reader counted {parsed.rows_in} records in {file.rel} but returned {landed} rows "
                      f"and {len(parsed.quarantined)} quarantined")  # fmt: skip
            parsed = Parsed(rejected=("parser_mismatch", reason))
    batch = Batch(org_code, kind.kind, kind.source_system, entity, window_start=file.rel, window_end=file.digest[:16])
    if parsed.rejected:
        code, reason = parsed.rejected
        batch.rows_in = 1
        batch.quarantined = [QuarantineRecord(file.rel, code, reason, file.data)]
    else:
        batch.rows_in = parsed.rows_in
        batch.quarantined = parsed.quarantined
    day = parsed.data_day or day_in_name(file.rel)
    return _Pending(file.job, batch, file.rel, file.digest, len(file.data), file.arrived, day, parsed, file.data)


def _primary_rows(parsed: Parsed, entity: str) -> int:
    if parsed.rows_out is not None:
        return parsed.rows_out
    primary = parsed.tables.get(entity)
    return 0 if primary is None else primary.height


def _flush(wh: Warehouse, group: _Group, runs: dict[tuple[str, str], SourceRun] | None, cutoff: str) -> None:
    """Land a group of parsed files in one transaction (or the caller's): raw rows, one ledger batch and one file
    row per file; then count them in `runs` (None: the caller does, once its transaction has committed)."""
    if not group.items:
        return
    first = group.items[0].batch
    with wh.transaction():
        loaded: dict[str, dict[str, int]] = {}
        for table, frame in group.tables.items():
            loaded[table] = append_raw(wh, table, frame, first.batch_id, first.started_at).loaded_by_batch
        for item in group.items:
            batch = item.batch
            if not item.parsed.rejected:
                batch.rows_loaded = loaded.get(batch.entity, {}).get(batch.batch_id, 0)
                batch.rows_unchanged = _primary_rows(item.parsed, batch.entity) - batch.rows_loaded
        write_batches(wh, [item.batch for item in group.items])
        _record_files(wh, group.items)
    if runs is not None:
        _count([_Landed.of(item) for item in group.items], runs, cutoff)


@dataclass(frozen=True)
class _Landed:
    """What the run counts of a landed file (kept until its transaction commits, without its bytes or rows)."""

    key: tuple[str, str]  # (org code, kind)
    rejected: bool
    batch: Batch
    day: date | None
    arrived: datetime

    @classmethod
    def of(cls, item: _Pending) -> _Landed:
        return cls((item.job.org_code, item.job.kind.kind), bool(item.parsed.rejected), item.batch, item.day,
                   item.arrived)  # fmt: skip


def _count(landed: list[_Landed], runs: dict[tuple[str, str], SourceRun], cutoff: str) -> None:
    """Add landed files and their rows to their institutions' runs."""
    for item in landed:
        run = runs[item.key]
        if item.rejected:
            run.files_rejected += 1
        else:
            run.files_loaded += 1
        run.add(item.batch)
        if item.day is not None:
            run.days[item.day] = max(run.days.get(item.day, 0), minutes_late(item.day, item.arrived, cutoff))
            run.day_rows[item.day] = run.day_rows.get(item.day, 0) + item.batch.rows_loaded


class _Transactions:
    """Lands parsed groups in transactions of up to TX_BYTES of input; a group's files reach the runs' counts only
    once its transaction has committed. Leaving the context commits what is open, or rolls it back on an error."""

    def __init__(self, wh: Warehouse, runs: dict[tuple[str, str], SourceRun], cutoff: str) -> None:
        self.wh, self.runs, self.cutoff = wh, runs, cutoff
        self.open: ExitStack | None = None
        self.size = 0
        self.landed: list[_Landed] = []

    def __enter__(self) -> _Transactions:
        return self

    def land(self, group: _Group) -> None:
        if self.open is None:
            self.open = ExitStack()
            self.open.enter_context(self.wh.transaction())
        _flush(self.wh, group, None, self.cutoff)
        self.landed += [_Landed.of(item) for item in group.items]
        self.size += sum(item.size for item in group.items)
        if self.size >= TX_BYTES:
            self.commit()

    def commit(self) -> None:
        if self.open is not None:
            self.open.close()
        _count(self.landed, self.runs, self.cutoff)
        self.open, self.size, self.landed = None, 0, []

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            self.commit()
        elif self.open is not None:
            self.open.__exit__(kind, error, tb)  # rolls back


def ingest_file(
    wh: Warehouse, kind: FileKind, org_code: str, folder: Path, path: Path, run: SourceRun, cutoff: str = "24:00"
) -> Batch | None:
    """Land one dropped file on its own (or skip it when the same bytes were landed before)."""
    job = FolderJob(kind, org_code, folder)
    file = _read(job, path, path.relative_to(folder).as_posix(), run, loaded_files(wh, org_code, kind.kind))
    if file is None:
        return None
    group = _parse_group([file])
    _flush(wh, group, {(org_code, kind.kind): run}, cutoff)
    return group.items[0].batch


def ingest_folder(
    wh: Warehouse,
    kind: FileKind,
    org_code: str,
    folder: Path,
    *,
    day: date | None = None,
    until: date | None = None,
    cutoff: str = "24:00",
    group_bytes: int | None = None,
    progress: Progress | None = None,
) -> SourceRun:
    """Land every new file of one institution's drop folder: only those of `day`, or of days up to `until`, if given.

    Files whose name or folder carries no date are always taken.

    Files are parsed and landed in groups of up to `group_bytes` of input per transaction (each file still gets its
    own ledger batch); a crash loses at most the group in flight, which the next run reads again.
    """
    job = FolderJob(kind, org_code, folder)
    return ingest_folders(wh, [job], day=day, until=until, cutoff=cutoff, group_bytes=group_bytes,
                          progress=progress)[0]  # fmt: skip


def ingest_folders(
    wh: Warehouse,
    jobs: list[FolderJob],
    *,
    day: date | None = None,
    until: date | None = None,
    cutoff: str = "24:00",
    group_bytes: int | None = None,
    progress: Progress | None = None,
) -> list[SourceRun]:
    """`ingest_folder` for several institutions' folders in one stream (one run per job, in order).

    Groups carry on from one folder to the next when the jobs' readers compare equal, so small folders share a
    transaction and the next group is always being parsed (in a thread: polars and the warehouse release the GIL)
    while the current one lands.
    """
    for job in jobs:
        if not job.folder.is_dir():
            raise SourceError(f"{job.org_code}: {job.kind.kind} drop folder {job.folder} does not exist")
    group_bytes = group_bytes or GROUP_BYTES
    runs = {(job.org_code, job.kind.kind): SourceRun(job.org_code, job.kind.kind) for job in jobs}
    group: list[_Found] = []
    size = 0
    parse_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hutong-parse")
    with parse_thread as parser, _Transactions(wh, runs, cutoff) as tx:
        landing: Future[_Group] | None = None

        def hand_over() -> None:
            nonlocal landing, group, size
            parsing = parser.submit(_read_group, group, runs)
            if landing is not None:
                tx.land(landing.result())
            landing, group, size = parsing, [], 0

        for job in jobs:
            run = runs[(job.org_code, job.kind.kind)]
            seen = loaded_files(wh, job.org_code, job.kind.kind)
            for path in sorted(job.kind.files(job.folder)):
                rel = path.relative_to(job.folder).as_posix()
                file_day = day_in_name(rel)
                if file_day is not None and (
                    (day is not None and file_day != day) or (until is not None and file_day > until)
                ):
                    continue
                found = _Found(job, path, rel, seen, path.stat().st_size)
                if group and group[0].job.kind != job.kind:  # another reader (settings differ): a group of its own
                    hand_over()
                group.append(found)
                size += found.size
                if size >= group_bytes or len(group) >= GROUP_FILES:
                    hand_over()
                    if progress:
                        progress(f"{job.org_code} {job.kind.kind}: {run.files_seen} files, {run.rows_loaded} new rows")
        if group:
            hand_over()
        if landing is not None:
            tx.land(landing.result())
    record_health_of_sources(  # every institution's marks in one transaction
        wh,
        [
            (org_code, kind, HealthMark(d, True, run.day_rows[d], late_minutes=late))
            for (org_code, kind), run in runs.items()
            for d, late in sorted(run.days.items())
        ],
    )
    return list(runs.values())


def record_source_failure(wh: Warehouse, org_code: str, kind: str, source_system: str, error: str, day: date) -> None:
    """Record that a source could not be read at all (one failed batch and a failed health mark for the day)."""
    record_failure(wh, Batch(org_code, kind, source_system, "*"), error)
    record_health(wh, org_code, kind, day, ok=False, rows_loaded=0, error=error)
