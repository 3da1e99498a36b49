"""Ingestion ledger: one ops.ingest_batch row per batch, quarantined originals, per-source health."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from warehouse import Warehouse

DEFAULT_TZ = "Asia/Shanghai"


def now_local(tz: str = DEFAULT_TZ) -> datetime:
    """Wall-clock time in the platform's time zone, without tzinfo (warehouse timestamps are local)."""
    return datetime.now(ZoneInfo(tz)).replace(tzinfo=None, microsecond=0)


class SourceError(Exception):
    """A source cannot be read at all (unreachable database, missing folder, bad mapping); other sources go on."""


@dataclass
class QuarantineRecord:
    """One input record that could not be landed, with the bytes as received."""

    origin: str
    error_code: str
    message: str
    original: bytes


@dataclass
class Batch:
    """A unit of ingestion whose counts reconcile: rows_in = loaded + unchanged + quarantined."""

    org_code: str
    source_kind: str
    source_system: str
    entity: str
    window_start: str = ""
    window_end: str = ""
    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=now_local)
    rows_in: int = 0
    rows_loaded: int = 0
    rows_unchanged: int = 0
    quarantined: list[QuarantineRecord] = field(default_factory=list)

    @property
    def rows_quarantined(self) -> int:
        return len(self.quarantined)


def row_bytes(row: dict[str, Any]) -> bytes:
    """The original bytes of a database row: its JSON with values as text."""
    return json.dumps({k: None if v is None else str(v) for k, v in row.items()}, ensure_ascii=False).encode()


def write_batch(wh: Warehouse, batch: Batch, status: str = "succeeded", error: str = "") -> None:
    """Record the batch and its quarantined records (call inside the transaction that landed the rows)."""
    write_batches(wh, [batch], status, error)


def write_batches(wh: Warehouse, batches: list[Batch], status: str = "succeeded", error: str = "") -> None:
    """Record several batches and their quarantined records with a few bulk statements."""
    for batch in batches:
        if batch.rows_in != batch.rows_loaded + batch.rows_unchanged + batch.rows_quarantined:
            raise AssertionError(f"batch {batch.batch_id} does not reconcile")
    if not batches:
        return
    finished = now_local()
    ids = [b.batch_id for b in batches]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        wh.execute(f"DELETE FROM ops.ingest_batch WHERE batch_id IN ({', '.join('?' for _ in chunk)})", chunk)
    ints = {"rows_in", "rows_loaded", "rows_unchanged", "rows_quarantined"}
    columns = ["batch_id", "org_code", "source_kind", "source_system", "entity", "window_start", "window_end",
               *sorted(ints), "status", "error"]  # fmt: skip
    frame = pl.DataFrame(
        {
            c: pl.Series(c, [getattr(b, c) for b in batches], dtype=pl.Int64 if c in ints else pl.String)
            for c in columns
            if c not in ("status", "error")
        }
    ).with_columns(
        pl.lit(status).alias("status"),
        pl.lit(error or None, dtype=pl.String).alias("error"),
        pl.Series("started_at", [b.started_at for b in batches], dtype=pl.Datetime("us")),
        pl.lit(finished, dtype=pl.Datetime("us")).alias("finished_at"),
    )
    wh.load("ops.ingest_batch", frame)
    fresh = _new_quarantine(wh, batches)
    if fresh:
        frame = pl.DataFrame(
            {
                "quarantine_id": [qid for qid, _, _ in fresh],
                "batch_id": [b.batch_id for _, _, b in fresh],
                "org_code": [b.org_code for _, _, b in fresh],
                "source_kind": [b.source_kind for _, _, b in fresh],
                "source_system": [b.source_system for _, _, b in fresh],
                "origin": [q.origin for _, q, _ in fresh],
                "error_code": [q.error_code for _, q, _ in fresh],
                "message": [q.message for _, q, _ in fresh],
                "original": pl.Series([q.original for _, q, _ in fresh], dtype=pl.Binary),
                "quarantined_at": pl.Series([finished] * len(fresh), dtype=pl.Datetime("us")),
            }
        )
        wh.load("ops.quarantine", frame)


def quarantine_id(org_code: str, record: QuarantineRecord) -> str:
    """Deterministic id: the same bad record re-ingested is quarantined once."""
    digest = hashlib.sha1(f"{org_code}\x1f{record.origin}\x1f{record.error_code}\x1f".encode() + record.original)
    return digest.hexdigest()


def _new_quarantine(wh: Warehouse, batches: list[Batch]) -> list[tuple[str, QuarantineRecord, Batch]]:
    """Quarantined records of the batches not already in ops.quarantine (each id once), looked up 500 at a time."""
    pending = {quarantine_id(b.org_code, q): (q, b) for b in batches for q in b.quarantined}
    ids = list(pending)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ", ".join("?" for _ in chunk)
        sql = f"SELECT quarantine_id FROM ops.quarantine WHERE quarantine_id IN ({marks})"
        for (existing,) in wh.query(sql, chunk):
            pending.pop(existing, None)
    return [(qid, q, b) for qid, (q, b) in pending.items()]


def record_failure(wh: Warehouse, batch: Batch, error: str) -> None:
    """Record a batch that could not run (source unreachable, bad mapping) without landing any rows."""
    batch.rows_in = batch.rows_loaded = batch.rows_unchanged = 0
    batch.quarantined = []
    write_batch(wh, batch, status="failed", error=error)


HEALTH_STAGE = "_hutong_health_stage"
_HEALTH_UPSERT = (
    "INSERT INTO ops.source_health AS h (org_code, source_kind, day, last_success_at, last_failure_at, "
    "last_error, batches_ok, batches_failed, rows_loaded, late_minutes, updated_at) "
    "SELECT org_code, source_kind, day, last_success_at, last_failure_at, last_error, batches_ok, batches_failed, "
    f"rows_loaded, late_minutes, updated_at FROM {HEALTH_STAGE} "
    "ON CONFLICT (org_code, source_kind, day) DO UPDATE SET "
    "last_success_at = coalesce(excluded.last_success_at, h.last_success_at), "
    "last_failure_at = coalesce(excluded.last_failure_at, h.last_failure_at), "
    "last_error = coalesce(excluded.last_error, h.last_error), "
    "batches_ok = h.batches_ok + excluded.batches_ok, "
    "batches_failed = h.batches_failed + excluded.batches_failed, "
    "rows_loaded = h.rows_loaded + excluded.rows_loaded, "
    "late_minutes = CASE WHEN h.late_minutes IS NULL OR excluded.late_minutes > h.late_minutes "
    "THEN excluded.late_minutes ELSE h.late_minutes END, "
    "updated_at = excluded.updated_at"
)


@dataclass(frozen=True)
class HealthMark:
    """One run's outcome for an institution, source kind and data day."""

    day: date
    ok: bool
    rows_loaded: int = 0
    error: str = ""
    late_minutes: int | None = None


def record_health_of_sources(wh: Warehouse, marks: list[tuple[str, str, HealthMark]]) -> None:
    """Update ops.source_health for many (institution, source kind, mark) in one transaction and one statement.

    Counts add up over runs; `late_minutes` (how long after the day's cut-off its data arrived) keeps the largest.
    Each (institution, source kind, day) at most once.
    """
    if not marks:
        return
    at = now_local()
    frame = pl.DataFrame(
        {
            "org_code": [org for org, _, _ in marks],
            "source_kind": [kind for _, kind, _ in marks],
            "day": pl.Series([m.day for _, _, m in marks], dtype=pl.Date),
            "last_success_at": pl.Series([at if m.ok else None for _, _, m in marks], dtype=pl.Datetime("us")),
            "last_failure_at": pl.Series([None if m.ok else at for _, _, m in marks], dtype=pl.Datetime("us")),
            "last_error": pl.Series([m.error or None for _, _, m in marks], dtype=pl.String),
            "batches_ok": pl.Series([int(m.ok) for _, _, m in marks], dtype=pl.Int64),
            "batches_failed": pl.Series([int(not m.ok) for _, _, m in marks], dtype=pl.Int64),
            "rows_loaded": pl.Series([m.rows_loaded for _, _, m in marks], dtype=pl.Int64),
            "late_minutes": pl.Series([m.late_minutes for _, _, m in marks], dtype=pl.Int64),
            "updated_at": pl.Series([at] * len(marks), dtype=pl.Datetime("us")),
        }
    )
    with wh.transaction():
        wh.execute(f"DROP TABLE IF EXISTS {HEALTH_STAGE}")
        wh.execute(f"CREATE TEMP TABLE {HEALTH_STAGE} AS SELECT * FROM ops.source_health WHERE false")
        wh.load(HEALTH_STAGE, frame)
        wh.execute(_HEALTH_UPSERT)
        wh.execute(f"DROP TABLE IF EXISTS {HEALTH_STAGE}")


def record_health(
    wh: Warehouse,
    org_code: str,
    source_kind: str,
    day: date,
    *,
    ok: bool,
    rows_loaded: int,
    error: str = "",
    late_minutes: int | None = None,
) -> None:
    """Update ops.source_health for one institution, source kind and day."""
    record_health_of_sources(wh, [(org_code, source_kind, HealthMark(day, ok, rows_loaded, error, late_minutes))])
