"""HIS database connector: incremental keyset pulls from vendor tables into raw.his_<entity>.

Each vendor schema is described by a YAML mapping in `his_vendors/` (tables, keys, update-time and
soft-delete columns, column → standard raw name). Values land as received (text); decoding local codes is
dbt's job. Progress is kept in ops.watermark per (institution, source system, table), committed in the same
transaction as the rows, so an interrupted run resumes where it stopped and a re-run adds nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from connectors.ledger import (
    Batch,
    QuarantineRecord,
    SourceError,
    now_local,
    record_failure,
    record_health,
    row_bytes,
    write_batch,
)
from warehouse import Warehouse, append_raw, ensure_core, ensure_raw_table

VENDOR_DIR = Path(__file__).with_name("his_vendors")
SOURCE_KIND = "his"
EPOCH = "1900-01-01 00:00:00"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class TableMapping:
    """How one vendor table maps onto a standard raw entity."""

    name: str
    entity: str
    keys: tuple[str, ...]
    updated_at: str | None  # None: a snapshot table (local code dictionaries) read whole on every pull
    columns: dict[str, str]
    deleted_column: str | None = None
    deleted_value: str | None = None
    constants: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The single key column of a watermarked table (keyset pagination)."""
        return self.keys[0]

    @property
    def snapshot(self) -> bool:
        return self.updated_at is None


@dataclass(frozen=True)
class VendorMapping:
    vendor: str
    source_system: str
    tables: tuple[TableMapping, ...]


@cache
def entities() -> dict[str, dict[str, Any]]:
    """Standard raw entities: raw table name and columns."""
    return yaml.safe_load((VENDOR_DIR / "entities.yaml").read_text(encoding="utf-8"))


@cache
def load_vendor(vendor: str) -> VendorMapping:
    """Read `his_vendors/<vendor>.yaml` and check its identifiers."""
    path = VENDOR_DIR / f"{vendor}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in VENDOR_DIR.glob("vendor_*.yaml")))
        raise SourceError(f"unknown HIS vendor {vendor!r}; known vendors: {known}")
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    tables = []
    for name, table in spec["tables"].items():
        entity = table["entity"]
        if entity not in entities():
            raise SourceError(f"{path.name}: table {name} maps to unknown entity {entity!r}")
        allowed = set(entities()[entity]["columns"])
        unknown = set(table["columns"]) - allowed
        if unknown:
            raise SourceError(f"{path.name}: table {name} maps unknown standard columns {sorted(unknown)}")
        keys = tuple(table["key"]) if isinstance(table["key"], list) else (table["key"],)
        updated_at = table.get("updated_at")
        if updated_at and len(keys) != 1:
            raise SourceError(f"{path.name}: table {name} has an update column, so it needs a single key column")
        for ident in [name, *keys, *([updated_at] if updated_at else []), *table["columns"].values()]:
            if not _IDENT.match(ident):
                raise SourceError(f"{path.name}: {ident!r} is not a plain column/table name")
        deleted = table.get("deleted") or {}
        tables.append(
            TableMapping(
                name=name,
                entity=entity,
                keys=keys,
                updated_at=updated_at or None,
                columns=dict(table["columns"]),
                deleted_column=deleted.get("column"),
                deleted_value=None if deleted.get("value") is None else str(deleted["value"]),
                constants={k: str(v) for k, v in (table.get("constants") or {}).items()},
            )
        )
    return VendorMapping(vendor=spec["vendor"], source_system=spec["source_system"], tables=tuple(tables))


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


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _timestamp(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).strip())
    except ValueError:
        return None


def _page_sql(table: TableMapping) -> str:
    cols = sorted({*table.keys, *table.columns.values()} | ({table.updated_at} if table.updated_at else set()) | (
        {table.deleted_column} if table.deleted_column else set()))  # fmt: skip
    if table.snapshot:  # small local code tables: read whole, paged in key order
        return (f"SELECT {', '.join(cols)} FROM {table.name} ORDER BY {', '.join(table.keys)} "
                "LIMIT :limit OFFSET :offset")  # fmt: skip
    wm = f"COALESCE({table.updated_at}, '{EPOCH}')"
    return (
        f"SELECT {', '.join(cols)}, {wm} AS hutong_wm FROM {table.name} "
        f"WHERE {wm} > :ts OR ({wm} = :ts AND {table.key} > :key) "
        f"ORDER BY hutong_wm, {table.key} LIMIT :limit"
    )


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


def _to_frame(rows: list[dict[str, Any]], table: TableMapping, org: str, system: str, batch: Batch) -> pl.DataFrame:
    """Map source rows onto the entity's standard columns; rows without a key go to the batch's quarantine."""
    standard = entities()[table.entity]["columns"]
    data: dict[str, list[Any]] = {c: [] for c in standard}
    lineage: dict[str, list[Any]] = {c: [] for c in ("_source_key", "_source_updated_at", "_deleted", "_origin")}
    for row in rows:
        parts = [_text(row[k]) for k in table.keys]
        key = "|".join(p or "" for p in parts)
        origin = f"{system}:{table.name}#{key}"
        if any(p is None or not p.strip() for p in parts):
            blank = [k for k, p in zip(table.keys, parts, strict=True) if not (p or "").strip()]
            empty = ", ".join(f"{table.name}.{k}" for k in blank)
            batch.quarantined.append(QuarantineRecord(origin, "missing_key", f"{empty} is empty", row_bytes(row)))
            continue
        for column in standard:
            if column in table.constants:
                data[column].append(table.constants[column])
            elif column in table.columns:
                data[column].append(_text(row[table.columns[column]]))
            else:
                data[column].append(None)
        deleted = table.deleted_column is not None and _text(row[table.deleted_column]) == table.deleted_value
        lineage["_source_key"].append(f"{table.name}:{key}")
        lineage["_source_updated_at"].append(_timestamp(row[table.updated_at]) if table.updated_at else None)
        lineage["_deleted"].append(deleted)
        lineage["_origin"].append(origin)
    frame = pl.DataFrame(data, schema={c: pl.String for c in standard})
    return frame.with_columns(
        pl.lit(org).alias("_org_code"),
        pl.lit(system).alias("_source_system"),
        pl.Series("_source_key", lineage["_source_key"], dtype=pl.String),
        pl.Series("_source_updated_at", lineage["_source_updated_at"], dtype=pl.Datetime("us")),
        pl.Series("_deleted", lineage["_deleted"], dtype=pl.Boolean),
        pl.Series("_origin", lineage["_origin"], dtype=pl.String),
    )


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
) -> HisRunSummary:
    """Pull every mapped table of one institution's HIS from its watermark onward (or from scratch if `full`)."""
    summary = HisRunSummary(org_code)
    mapping = load_vendor(vendor)
    system = mapping.source_system
    try:
        engine = create_engine(source_url)
    except (ArgumentError, SQLAlchemyError, ModuleNotFoundError) as exc:
        raise SourceError(f"{org_code}: HIS url {make_url_safe(source_url)} is not usable: {exc}") from exc
    for spec in entities().values():
        ensure_raw_table(wh, spec["raw_table"], list(spec["columns"]))
    try:
        with engine.connect() as source:
            for table in mapping.tables:
                ts, key = (EPOCH, "") if full or table.snapshot else _watermark(wh, org_code, system, table.name)
                sql = text(_page_sql(table))
                offset = 0
                while True:
                    started = time.monotonic()
                    window = f"{table.name}@{offset}" if table.snapshot else f"{table.name}@{ts}|{key}"
                    batch = Batch(org_code, SOURCE_KIND, system, table.entity, window_start=window)
                    result = source.execute(sql, {"ts": ts, "key": key, "limit": batch_size, "offset": offset})
                    rows = [dict(r._mapping) for r in result]
                    if not rows:
                        break
                    offset += len(rows)
                    if not table.snapshot:
                        last = rows[-1]
                        ts, key = _text(last["hutong_wm"]) or EPOCH, _text(last[table.key]) or ""
                        for row in rows:
                            row.pop("hutong_wm")
                    batch.window_end = f"{table.name}@{offset}" if table.snapshot else f"{table.name}@{ts}|{key}"
                    batch.rows_in = len(rows)
                    frame = _to_frame(rows, table, org_code, system, batch)
                    with wh.transaction():
                        landed = append_raw(wh, entities()[table.entity]["raw_table"], frame, batch.batch_id,
                                            batch.started_at)  # fmt: skip
                        batch.rows_loaded = landed.rows_loaded
                        batch.rows_unchanged = landed.rows_unchanged
                        write_batch(wh, batch)
                        if not table.snapshot:
                            _save_watermark(wh, org_code, system, table.name, ts, key, batch.batch_id)
                    summary.batches += 1
                    summary.rows_in += batch.rows_in
                    summary.rows_loaded += batch.rows_loaded
                    summary.rows_unchanged += batch.rows_unchanged
                    summary.rows_quarantined += batch.rows_quarantined
                    if progress:
                        progress(f"{org_code} {table.name}: {summary.rows_in} rows read, {summary.rows_loaded} new")
                    if max_rows_per_second > 0:
                        time.sleep(max(0.0, len(rows) / max_rows_per_second - (time.monotonic() - started)))
                    if len(rows) < batch_size:
                        break
    except SQLAlchemyError as exc:
        first = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
        raise SourceError(f"{org_code}: cannot read HIS at {make_url_safe(source_url)}: {first}") from exc
    finally:
        engine.dispose()
    return summary


def make_url_safe(url: str) -> str:
    """A source URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


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
