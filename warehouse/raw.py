"""Append-only raw tables: payload columns as received (text) plus lineage, deduplicated on org + key + hash."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from warehouse.core import Warehouse
from warehouse.ddl import contracts, create_table_sql
from warehouse.dialect import sql_type
from warehouse.load import quote_ident

STAGE = "_hutong_raw_stage"
NEW = "_hutong_raw_new"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")

# Columns a connector supplies with each batch besides the payload.
INPUT_LINEAGE = ("_org_code", "_source_system", "_source_key", "_source_updated_at", "_deleted", "_origin")


@dataclass(frozen=True)
class RawAppendResult:
    """How many rows of a batch were new and how many were already in raw (per batch id when several)."""

    rows_in: int
    rows_loaded: int
    loaded_by_batch: dict[str, int] = field(default_factory=dict)

    @property
    def rows_unchanged(self) -> int:
        return self.rows_in - self.rows_loaded


def lineage_columns() -> dict[str, str]:
    return dict(contracts()["raw_lineage"])


# Raw columns seen committed, per open warehouse connection: raw tables only ever grow, so a batch whose payload
# columns are all known needs no catalog query (two per batch otherwise).
_KNOWN: weakref.WeakKeyDictionary[Warehouse, dict[str, frozenset[str]]] = weakref.WeakKeyDictionary()


def ensure_raw_table(wh: Warehouse, table: str, payload: list[str]) -> None:
    """Create `raw.<table>` or add payload columns that a grown mapping now supplies."""
    if not _NAME.match(table):
        raise ValueError(f"raw table name {table!r} must be lower_snake_case")
    known = _KNOWN.setdefault(wh, {})
    if known.get(table, frozenset()).issuperset(payload):
        return
    qualified = f"raw.{table}"
    wh.execute("CREATE SCHEMA IF NOT EXISTS raw")
    if not wh.table_exists(qualified):
        columns = {name: "text" for name in payload} | lineage_columns()
        wh.execute(create_table_sql(wh.dialect, qualified, columns))
        if wh.dialect == "postgres":
            wh.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_key_hash ON {qualified} (_org_code, _source_key, _record_hash)"
            )
        return
    existing = set(wh.columns(qualified))
    if not wh.in_transaction:  # what a transaction saw may still roll back
        known[table] = frozenset(existing)
    for name in payload:
        if name not in existing:
            wh.execute(f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(name)} {sql_type(wh.dialect, 'text')}")


def _hash_expr(payload: list[str]) -> str:
    parts = [f"coalesce(CAST({quote_ident(c)} AS VARCHAR), chr(30))" for c in sorted(payload)]
    parts.append("CASE WHEN _deleted THEN 'D' ELSE '-' END")
    parts.append("coalesce(CAST(_source_updated_at AS VARCHAR), chr(30))")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


@contextmanager
def _staged(wh: Warehouse, frame: pl.DataFrame, columns: dict[str, str]) -> Iterator[None]:
    """The batch as relation STAGE: a zero-copy Arrow view on DuckDB, a COPY-loaded temp table on PostgreSQL."""
    wh.execute(f"DROP TABLE IF EXISTS {NEW}")
    if wh.dialect == "duckdb":
        wh.conn.register(STAGE, frame.to_arrow())
        try:
            yield
        finally:
            wh.conn.unregister(STAGE)
        return
    wh.execute(f"DROP TABLE IF EXISTS {STAGE}")
    wh.execute(create_table_sql(wh.dialect, STAGE, columns).replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
    wh.load(STAGE, frame)
    yield
    wh.execute(f"DROP TABLE IF EXISTS {STAGE}")  # not in `finally`: a failed PostgreSQL transaction takes no more


def _fresh_sql(payload: list[str], qualified: str, repeats: bool) -> str:
    """The rows of STAGE to land (row number, batch id, hash, operation): new (org, key, hash) only, once each.

    `_op` is D for deletes, U when the key is already in raw or an earlier version of it is in the batch, else I.
    Without `repeats` (each key once in the batch) no window function is needed.
    """
    dup = "row_number() OVER (PARTITION BY _org_code, _source_key, _record_hash ORDER BY _origin)" if repeats else "1"
    seq = ("row_number() OVER (PARTITION BY _org_code, _source_key ORDER BY _source_updated_at NULLS FIRST, _origin)"
           if repeats else "1")  # fmt: skip
    return f"""
        WITH hashed AS (
            SELECT _row, _org_code, _source_key, _source_updated_at, _deleted, _origin, _batch_id,
                   {_hash_expr(payload)} AS _record_hash
            FROM {STAGE}
        ), prior AS MATERIALIZED (
            -- the landed versions of the keys in the batch: raw is scanned once and probed against the (small)
            -- batch, never loaded into a hash table of its own
            SELECT r._org_code, r._source_key, r._record_hash FROM {qualified} r
            WHERE EXISTS (SELECT 1 FROM {STAGE} s WHERE s._org_code = r._org_code AND s._source_key = r._source_key)
        ), unique_rows AS (
            SELECT *, {dup} AS _dup FROM hashed
        ), fresh AS (
            SELECT u.* FROM unique_rows u
            WHERE u._dup = 1 AND NOT EXISTS (
                SELECT 1 FROM prior p
                WHERE p._org_code = u._org_code AND p._source_key = u._source_key AND p._record_hash = u._record_hash)
        ), ordered AS (
            SELECT f.*, {seq} AS _seq,
                   EXISTS (SELECT 1 FROM prior p
                           WHERE p._org_code = f._org_code AND p._source_key = f._source_key) AS _prior
            FROM fresh f
        )
        SELECT _row, coalesce(_batch_id, CAST(? AS VARCHAR)) AS _batch_id, _record_hash,
               CASE WHEN _deleted THEN 'D' WHEN _prior OR _seq > 1 THEN 'U' ELSE 'I' END AS _op
        FROM ordered
    """


def append_raw(wh: Warehouse, table: str, frame: pl.DataFrame, batch_id: str, ingested_at: datetime) -> RawAppendResult:
    """Append a batch to `raw.<table>`; rows already landed (same org, source key and hash) are skipped.

    `frame` holds payload columns plus `_org_code, _source_system, _source_key, _source_updated_at,
    _deleted, _origin`, and optionally `_batch_id` when rows of several ledger batches land together (rows without
    one get `batch_id`). `_op` becomes D for deletes, U when the key was seen before, else I.
    Call inside a transaction together with the batch ledger so a crash leaves nothing half-written.
    """
    missing = [c for c in INPUT_LINEAGE if c not in frame.columns]
    if missing:
        raise ValueError(f"batch for raw.{table} lacks lineage columns {missing}")
    payload = [c for c in frame.columns if c not in INPUT_LINEAGE and c != "_batch_id"]
    if frame.height == 0:
        return RawAppendResult(0, 0)
    ensure_raw_table(wh, table, payload)
    stage_cols = {c: "text" for c in payload} | {
        "_org_code": "text",
        "_source_system": "text",
        "_source_key": "text",
        "_source_updated_at": "timestamp",
        "_deleted": "bool",
        "_origin": "text",
        "_batch_id": "text",
        "_row": "int",
    }
    if "_batch_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(batch_id).alias("_batch_id"))
    frame = frame.with_columns(
        [pl.col(c).cast(pl.String) for c in payload]
        + [pl.col("_source_updated_at").cast(pl.Datetime("us")), pl.col("_deleted").cast(pl.Boolean)]
        + [pl.int_range(pl.len(), dtype=pl.Int64).alias("_row")]
    ).select(list(stage_cols))
    # a key that comes more than once in the batch needs the window functions that order its versions; most
    # batches hold each key once, and then every fresh row is its key's first version in the batch
    repeats = bool(frame.select(pl.struct("_org_code", "_source_key").is_duplicated().any()).item())
    qualified = f"raw.{table}"
    with wh.transaction(), _staged(wh, frame, stage_cols):
        wh.execute(f"CREATE TEMP TABLE {NEW} AS {_fresh_sql(payload, qualified, repeats)}", [batch_id])
        by_batch = {b: n for b, n in wh.query(f"SELECT _batch_id, count(*) FROM {NEW} GROUP BY _batch_id")}
        loaded = sum(by_batch.values())
        from_new = {"_batch_id": "n._batch_id", "_ingested_at": "CAST(? AS TIMESTAMP)", "_op": "n._op",
                    "_record_hash": "n._record_hash"}  # fmt: skip
        target = [*payload, *lineage_columns()]
        values = ", ".join(from_new.get(c, f"s.{quote_ident(c)}") for c in target)
        wh.execute(
            f"INSERT INTO {qualified} ({', '.join(quote_ident(c) for c in target)}) "
            f"SELECT {values} FROM {NEW} n JOIN {STAGE} s ON s._row = n._row",
            [ingested_at],
        )
        wh.execute(f"DROP TABLE IF EXISTS {NEW}")
    return RawAppendResult(rows_in=frame.height, rows_loaded=loaded, loaded_by_batch=by_batch)
