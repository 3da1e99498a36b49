"""Small warehouse helpers of the mpi schema: replace rows by key through a temp stage, ids, timestamps."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

import polars as pl

from warehouse import Warehouse
from warehouse.load import quote_ident


def now() -> datetime:
    """UTC now without tzinfo, at microsecond precision (both warehouses store TIMESTAMP without zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_event_id() -> str:
    return uuid.uuid4().hex


def empi_for_key(org_code: str, source_system: str, local_id: str) -> str:
    """A new EMPI id, derived from the identity that founded the person (deterministic, never reused)."""
    digest = hashlib.sha256(f"{org_code}\x1f{source_system}\x1f{local_id}".encode()).hexdigest()
    return "E" + digest[:17].upper()


def candidate_id(left: str, right: str) -> str:
    return "C" + hashlib.sha256(f"{left}\x1f{right}".encode()).hexdigest()[:17].upper()


def replace_rows(wh: Warehouse, table: str, frame: pl.DataFrame, key: list[str]) -> int:
    """Delete the rows of `table` whose key is in `frame`, then insert `frame` (inside the caller's transaction)."""
    if frame.height == 0:
        return 0
    if not wh.query(f"SELECT 1 FROM {table} LIMIT 1"):  # empty (a first run): nothing to replace
        return wh.load(table, frame)
    stage = "_mpi_stage_" + table.split(".")[1]
    wh.execute(f"DROP TABLE IF EXISTS {stage}")
    wh.execute(f"CREATE TEMP TABLE {stage} AS SELECT * FROM {table} WHERE 1 = 0")
    wh.load(stage, frame)
    match = " AND ".join(f"s.{quote_ident(k)} = t.{quote_ident(k)}" for k in key)
    wh.execute(f"DELETE FROM {table} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {match})")
    cols = ", ".join(quote_ident(c) for c in frame.columns)
    wh.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {stage}")
    wh.execute(f"DROP TABLE {stage}")
    return frame.height
