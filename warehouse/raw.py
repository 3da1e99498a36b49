"""Append-only raw tables: payload columns as received (text) plus lineage, deduplicated on org + key + hash."""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from warehouse.core import Warehouse
from warehouse.ddl import contracts, create_table_sql
from warehouse.dialect import sql_type
from warehouse.load import over_arrow, quote_ident

STAGE = "_hutong_raw_stage"
NEW = "_hutong_raw_new"
PRIOR = "_hutong_raw_prior"
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


def whole_record_columns() -> frozenset[str]:
    """Raw columns holding a whole message or document as received (contracts.yaml `raw_whole_record_columns`):
    kept for audit, stored with zstd on DuckDB, read by no quality rule."""
    return frozenset(contracts().get("raw_whole_record_columns", []))


# Raw columns seen committed, per open warehouse connection: raw tables only ever grow, so a batch whose payload
# columns are all known needs no catalog query (two per batch otherwise).
_KNOWN: weakref.WeakKeyDictionary[Warehouse, dict[str, frozenset[str]]] = weakref.WeakKeyDictionary()
# Raw columns seen inside the open transaction (its serial number with them): valid until it ends, since a roll
# back may drop what it created; a drop folder lands many groups in one transaction.
_TX_KNOWN: weakref.WeakKeyDictionary[Warehouse, tuple[int, dict[str, frozenset[str]]]] = weakref.WeakKeyDictionary()


def _known(wh: Warehouse) -> dict[str, frozenset[str]]:
    """The columns of raw tables this connection may take as existing now."""
    if not wh.in_transaction:
        return _KNOWN.setdefault(wh, {})
    serial, seen = _TX_KNOWN.get(wh, (-1, {}))
    if serial != wh.transaction_serial:
        serial, seen = wh.transaction_serial, {}
        _TX_KNOWN[wh] = (serial, seen)
    return _KNOWN.setdefault(wh, {}) | seen


def ensure_raw_table(wh: Warehouse, table: str, payload: list[str]) -> None:
    """Create `raw.<table>` or add payload columns that a grown mapping now supplies."""
    if not _NAME.match(table):
        raise ValueError(f"raw table name {table!r} must be lower_snake_case")
    if _known(wh).get(table, frozenset()).issuperset(payload):
        return
    qualified = f"raw.{table}"
    wh.execute("CREATE SCHEMA IF NOT EXISTS raw")
    if not wh.table_exists(qualified):
        columns = {name: "text" for name in payload} | lineage_columns()
        whole = {name: "zstd" for name in whole_record_columns() if name in columns}
        wh.execute(create_table_sql(wh.dialect, qualified, columns, compression=whole))
        if wh.dialect == "postgres":
            wh.execute(
                f"CREATE INDEX IF NOT EXISTS {table}_key_hash ON {qualified} (_org_code, _source_key, _record_hash)"
            )
        _remember(wh, table, set(columns))
        return
    existing = set(wh.columns(qualified))
    _remember(wh, table, existing)
    for name in payload:
        if name not in existing:
            wh.execute(f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(name)} {sql_type(wh.dialect, 'text')}")
    _remember(wh, table, existing | set(payload))


def _remember(wh: Warehouse, table: str, columns: set[str]) -> None:
    """Note a raw table's columns: for good outside a transaction, else until the transaction ends."""
    if wh.in_transaction:
        _known(wh)  # starts this transaction's cache when it is new
        _TX_KNOWN[wh][1][table] = frozenset(columns)
    else:
        _KNOWN.setdefault(wh, {})[table] = frozenset(columns)


def _hash_expr(payload: list[str]) -> str:
    parts = [f"coalesce(CAST({quote_ident(c)} AS VARCHAR), chr(30))" for c in sorted(payload)]
    parts.append("CASE WHEN _deleted THEN 'D' ELSE '-' END")
    parts.append("coalesce(CAST(_source_updated_at AS VARCHAR), chr(30))")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


@contextmanager
def _staged(wh: Warehouse, frame: pl.DataFrame, columns: dict[str, str]) -> Iterator[Callable[[str], None]]:
    """A runner of statements that read the batch as relation STAGE: a zero-copy Arrow relation on DuckDB (string
    views as they are: the default, oldest, Arrow level would copy every string column), a COPY-loaded temp table
    on PostgreSQL."""
    wh.execute(f"DROP TABLE IF EXISTS {NEW}")
    if wh.dialect == "duckdb":
        yield over_arrow(wh, STAGE, frame.to_arrow(compat_level=pl.CompatLevel.newest()))
        return
    wh.execute(f"DROP TABLE IF EXISTS {STAGE}")
    wh.execute(create_table_sql(wh.dialect, STAGE, columns).replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
    wh.load(STAGE, frame)
    yield wh.execute
    wh.execute(f"DROP TABLE IF EXISTS {STAGE}")  # not in `finally`: a failed PostgreSQL transaction takes no more


def _prior_sql(qualified: str) -> str:
    """The landed versions (org, key, hash) of the keys in STAGE: raw is scanned once and probed against the
    (small) batch, never loaded into a hash table of its own."""
    return f"""
        SELECT r._org_code, r._source_key, r._record_hash FROM {qualified} r
        WHERE EXISTS (SELECT 1 FROM {STAGE} s WHERE s._org_code = r._org_code AND s._source_key = r._source_key)
    """


def _fresh_sql(payload: list[str], repeats: bool) -> str:
    """The rows of STAGE to land (row number, batch id, hash, operation): new (org, key, hash) only, once each.

    `_op` is D for deletes, U when the key is already in raw (PRIOR) or an earlier version of it is in the batch,
    else I.
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
        ), prior AS (
            SELECT * FROM {PRIOR}
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
        SELECT _row, _batch_id, _record_hash,
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
        "_ingested_at": "timestamp",
        "_row": "int",
    }
    if "_batch_id" not in frame.columns:
        frame = frame.with_columns(pl.lit(batch_id).alias("_batch_id"))
    else:
        frame = frame.with_columns(pl.col("_batch_id").fill_null(batch_id))
    frame = frame.with_columns(
        [pl.col(c).cast(pl.String) for c in payload]
        + [pl.col("_source_updated_at").cast(pl.Datetime("us")), pl.col("_deleted").cast(pl.Boolean)]
        + [pl.lit(ingested_at, dtype=pl.Datetime("us")).alias("_ingested_at")]
        + [pl.int_range(pl.len(), dtype=pl.Int64).alias("_row")]
    ).select(list(stage_cols))
    # a key that comes more than once in the batch needs the window functions that order its versions; most
    # batches hold each key once, and then every fresh row is its key's first version in the batch
    repeats = bool(frame.select(pl.struct("_org_code", "_source_key").is_duplicated().any()).item())
    qualified = f"raw.{table}"
    target = [*payload, *lineage_columns()]
    columns = ", ".join(quote_ident(c) for c in target)
    with wh.transaction(), _staged(wh, frame, stage_cols) as on_stage:
        wh.execute(f"DROP TABLE IF EXISTS {PRIOR}")
        on_stage(f"CREATE TEMP TABLE {PRIOR} AS {_prior_sql(qualified)}")
        if not repeats and not wh.scalar(f"SELECT count(*) FROM {PRIOR}"):
            # the common case: no key of the batch landed before nor repeated in it, so every row is new
            computed = {
                "_batch_id": "_batch_id",
                "_ingested_at": "_ingested_at",
                "_op": "CASE WHEN _deleted THEN 'D' ELSE 'I' END",
                "_record_hash": _hash_expr(payload),
            }
            values = ", ".join(computed.get(c, quote_ident(c)) for c in target)
            on_stage(f"INSERT INTO {qualified} ({columns}) SELECT {values} FROM {STAGE}")
            by_batch = dict(frame.group_by("_batch_id").len().iter_rows())
        else:
            by_batch = _append_fresh(wh, on_stage, qualified, payload, target, repeats)
        wh.execute(f"DROP TABLE IF EXISTS {PRIOR}")
    return RawAppendResult(rows_in=frame.height, rows_loaded=sum(by_batch.values()), loaded_by_batch=by_batch)


def _append_fresh(wh: Warehouse, on_stage: Callable[[str], None], qualified: str, payload: list[str],
                  target: list[str], repeats: bool) -> dict[str, int]:  # fmt: skip
    """Insert the fresh rows of STAGE (checked against PRIOR and each other); rows loaded per batch id."""
    on_stage(f"CREATE TEMP TABLE {NEW} AS {_fresh_sql(payload, repeats)}")
    by_batch = {b: n for b, n in wh.query(f"SELECT _batch_id, count(*) FROM {NEW} GROUP BY _batch_id")}
    from_new = {"_batch_id": "n._batch_id", "_op": "n._op",
                "_record_hash": "n._record_hash"}  # fmt: skip
    values = ", ".join(from_new.get(c, f"s.{quote_ident(c)}") for c in target)
    on_stage(
        f"INSERT INTO {qualified} ({', '.join(quote_ident(c) for c in target)}) "
        f"SELECT {values} FROM {NEW} n JOIN {STAGE} s ON s._row = n._row"
    )
    wh.execute(f"DROP TABLE IF EXISTS {NEW}")
    return by_batch
