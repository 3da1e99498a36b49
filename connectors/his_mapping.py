"""HIS vendor mappings (YAML in `his_vendors/`) and the mapping of a page of source rows onto a raw entity.

A page is a polars frame of the vendor table's selected columns as text (and `hutong_wm`, the watermark, for
watermarked tables); `to_frame` turns it into the entity's standard columns plus lineage, vectorised, and
sends rows without a key to quarantine with their original values.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from connectors.ledger import QuarantineRecord, SourceError

VENDOR_DIR = Path(__file__).with_name("his_vendors")
EPOCH = "1900-01-01 00:00:00"
WATERMARK = "hutong_wm"  # the page column holding COALESCE(update time, EPOCH)
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


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

    @property
    def selected(self) -> list[str]:
        """The source columns read (sorted): keys, mapped columns, update time and delete flag."""
        extra = {c for c in (self.updated_at, self.deleted_column) if c}
        return sorted({*self.keys, *self.columns.values()} | extra)


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


def as_text(value: Any) -> str | None:
    """A source value as text: timestamps to the second, dates ISO, bytes as UTF-8."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.strftime(TIMESTAMP_FORMAT)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def parse_timestamp(value: str | None) -> datetime | None:
    """An update time as a timestamp (ISO 8601 text), or None when it is not one."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        return None


@cache
def python_whitespace() -> str:
    """Every character `str.strip()` removes (polars strips only Unicode White_Space)."""
    return "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())


def _timestamps(text: pl.Series) -> pl.Series:
    """`parse_timestamp` over a column: polars for the usual `YYYY-MM-DD HH:MM:SS`, Python for anything else."""
    fast = text.str.to_datetime(TIMESTAMP_FORMAT, strict=False, time_unit="us")
    exact = (fast.dt.strftime(TIMESTAMP_FORMAT) == text).fill_null(False)
    odd = text.is_not_null() & ~exact
    if not odd.any():
        return fast
    slow = pl.Series([parse_timestamp(v) if o else None for v, o in zip(text, odd, strict=True)],
                     dtype=pl.Datetime("us"))  # fmt: skip
    return pl.select(pl.when(odd).then(slow).otherwise(fast)).to_series()


def to_frame(
    page: pl.DataFrame, table: TableMapping, org: str, system: str
) -> tuple[pl.DataFrame, list[QuarantineRecord]]:
    """Map a page of source rows (text) onto the entity's standard columns plus lineage; keyless rows quarantined."""
    space = python_whitespace()
    parts = [pl.col(k) for k in table.keys]
    blank = [pl.col(k).is_null() | (pl.col(k).str.strip_chars(space) == "") for k in table.keys]
    key = pl.concat_str([p.fill_null("") for p in parts], separator="|") if len(parts) > 1 else parts[0].fill_null("")
    page = page.with_columns(key.alias("hutong_key"), pl.any_horizontal(blank).alias("hutong_blank"))
    quarantined = _keyless(page.filter("hutong_blank"), table, system) if page["hutong_blank"].any() else []
    page = page.filter(~pl.col("hutong_blank"))
    if table.updated_at:
        page = page.with_columns(_timestamps(page[table.updated_at]).alias("hutong_updated"))
    else:
        page = page.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("hutong_updated"))
    standard = entities()[table.entity]["columns"]
    payload = [
        pl.lit(table.constants[c], dtype=pl.String)
        if c in table.constants
        else (pl.col(table.columns[c]) if c in table.columns else pl.lit(None, dtype=pl.String))
        for c in standard
    ]
    deleted = (
        (pl.col(table.deleted_column) == table.deleted_value).fill_null(False)
        if table.deleted_column and table.deleted_value is not None
        else pl.lit(False)
    )
    frame = page.select(
        *(value.cast(pl.String).alias(c) for value, c in zip(payload, standard, strict=True)),
        pl.lit(org, dtype=pl.String).alias("_org_code"),
        pl.lit(system, dtype=pl.String).alias("_source_system"),
        (pl.lit(f"{table.name}:") + pl.col("hutong_key")).alias("_source_key"),
        pl.col("hutong_updated").alias("_source_updated_at"),
        deleted.alias("_deleted"),
        (pl.lit(f"{system}:{table.name}#") + pl.col("hutong_key")).alias("_origin"),
    )
    return frame, quarantined


def _keyless(rows: pl.DataFrame, table: TableMapping, system: str) -> list[QuarantineRecord]:
    """Quarantine records for rows whose key is empty, with the row's values (as text) as original bytes."""
    out = []
    for row in rows.drop(WATERMARK, "hutong_key", "hutong_blank", strict=False).iter_rows(named=True):
        empty = ", ".join(f"{table.name}.{k}" for k in table.keys if not (row[k] or "").strip())
        origin = f"{system}:{table.name}#{'|'.join(row[k] or '' for k in table.keys)}"
        original = json.dumps(row, ensure_ascii=False).encode()
        out.append(QuarantineRecord(origin, "missing_key", f"{empty} is empty", original))
    return out
