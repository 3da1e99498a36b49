"""Current versions of a raw data set, kept by the quality stage: `quality.current__<data set>` holds the latest
version per (institution, source key) of its raw table, as received (all columns, lineage included), deletions
dropped. A run merges only the raw batches that are new or grew since the last run: the ledger
`quality.current_batch` records how many raw rows of each batch the table reflects; the keys those batches touch
are re-derived from all their raw versions, so the table always equals what `latest_sql` gives over raw."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import polars as pl

from quality.catalog import Dataset
from quality.relation import latest_sql, version_order
from warehouse import Warehouse

LEDGER = "quality.current_batch"
BATCHES = "q_current_batches"
KEYS = "q_current_keys"
FULL_SHARE = 0.5  # when the changed batches hold more than this share of raw, rebuilding is cheaper than merging


@dataclass(frozen=True)
class SyncResult:
    dataset: str
    mode: str  # unchanged / merged / rebuilt
    batches: int  # batches merged (new or grown)
    raw_rows: int  # raw rows of those batches


class Follower(Protocol):
    """Keeps something derived from the current-version table in step with its merges."""

    def before(self, keys: str) -> None:
        """The rows of `keys` (a temp table of `(_q_o, _q_k)` institution/source-key pairs) are about to be replaced."""

    def after(self, keys: str | None) -> None:
        """The rows of `keys` were replaced or dropped (None: the whole table was rebuilt)."""


def current_table(ds: Dataset) -> str:
    """The data set's current-version table."""
    return f"quality.current__{ds.name}"


def keyed(ds: Dataset, keys: str, dialect: str) -> str:
    """A filter on the current-version table (alias-free, its own columns) keeping the records of `keys` (a table
    of `(_q_o, _q_k)` institution/source-key pairs). On DuckDB by row id: the semi-join then reads only the key
    columns and the wide rows are fetched by position — a scan reading every column of every row to keep a few
    took about twice as long at county size; on PostgreSQL by key (its index)."""
    match = f"({ds.org_column}, {ds.key}) IN (SELECT _q_o, _q_k FROM {keys})"
    if dialect != "duckdb":
        return match
    return f"rowid IN (SELECT rowid FROM {current_table(ds)} WHERE {match})"


def _ensure_table(wh: Warehouse, ds: Dataset, columns: list[tuple[str, str]]) -> bool:
    """Create the table with `columns` (raw's, as the rules read them), or add those raw gained since and drop those
    the rules no longer read (a whole-record column an earlier version copied); True when it was created."""
    table = current_table(ds)
    have = set(wh.columns(table))  # none: no such table (one catalog query)
    if not have:
        names = ", ".join(name for name, _ in columns)
        wh.execute(f"CREATE TABLE {table} AS SELECT {names} FROM {ds.table} WHERE 1 = 0")
        if wh.dialect == "postgres":  # merges delete by key: an index there (DuckDB deletes by a hash join)
            wh.execute(f"CREATE INDEX ON {table} ({ds.org_column}, {ds.key})")
        return True
    for name, dtype in columns:
        if name not in have:
            wh.execute(f"ALTER TABLE {table} ADD COLUMN {name} {dtype}")
    for name in sorted(have - {name for name, _ in columns}):
        wh.execute(f"ALTER TABLE {table} DROP COLUMN {name}")
    return False


def _write_ledger(wh: Warehouse, ds: Dataset, counts: dict[str, int], replace_all: bool) -> None:
    """Record the raw rows merged per batch (all batches, or `counts`' — already staged in BATCHES — only)."""
    if replace_all:
        wh.execute(f"DELETE FROM {LEDGER} WHERE dataset = ?", [ds.name])
    else:
        wh.execute(f"DELETE FROM {LEDGER} WHERE dataset = ? AND batch_id IN (SELECT batch_id FROM {BATCHES})",
                   [ds.name])  # fmt: skip
    if counts:
        frame = pl.DataFrame(
            {"dataset": [ds.name] * len(counts), "batch_id": list(counts), "raw_rows": list(counts.values())},
            schema={"dataset": pl.String, "batch_id": pl.String, "raw_rows": pl.Int64},
        )
        wh.load(LEDGER, frame)


def _stage_batches(wh: Warehouse, batches: list[str]) -> None:
    wh.execute(f"DROP TABLE IF EXISTS {BATCHES}")
    wh.execute(f"CREATE TEMP TABLE {BATCHES} (batch_id VARCHAR)")
    if batches:
        wh.load(BATCHES, pl.DataFrame({"batch_id": batches}, schema={"batch_id": pl.String}))


def _newest(spans: dict[str, tuple[int, object, object]], changed: set[str]) -> bool:
    """Every row of the changed batches was ingested strictly after every row of the other batches."""
    firsts = [spans[b][1] for b in changed]
    lasts = [spans[b][2] for b in spans if b not in changed]
    if any(t is None for t in firsts + lasts):
        return False
    return not lasts or min(firsts) > max(lasts)  # type: ignore[operator]


def sync_current(
    wh: Warehouse, ds: Dataset, columns: list[tuple[str, str]], follower: Follower | None = None
) -> SyncResult:
    """Bring the data set's current-version table up to date with raw (call inside the run's transaction), telling
    `follower` (when given) which rows change."""
    table, org, key = current_table(ds), ds.org_column, ds.key
    created = _ensure_table(wh, ds, columns)
    names = ", ".join(name for name, _ in columns)
    spans: dict[str, tuple[int, object, object]] = {}  # batch → (raw rows, first and last ingest time)
    merged: dict[str, int] = {}  # batch → raw rows merged (the ledger), read by the same statement
    for b, n, lo, hi, m in wh.query(
        f"SELECT coalesce(r.b, l.batch_id), r.n, r.lo, r.hi, l.raw_rows FROM (SELECT {ds.batch} AS b, count(*) AS n, "
        f"min(_ingested_at) AS lo, max(_ingested_at) AS hi FROM {ds.table} GROUP BY {ds.batch}) r "
        f"FULL JOIN (SELECT batch_id, raw_rows FROM {LEDGER} WHERE dataset = ?) l ON l.batch_id = r.b",
        [ds.name],
    ):
        if n is not None:
            spans[str(b)] = (int(n), lo, hi)
        if m is not None:
            merged[str(b)] = int(m)
    counts = {b: n for b, (n, _, _) in spans.items()}
    changed = {b: n for b, n in counts.items() if merged.get(b) != n}
    shrunk = any(counts.get(b, 0) < n for b, n in merged.items())  # raw lost rows (rebuilt): trust nothing merged
    if not changed and not shrunk and not created:
        return SyncResult(ds.name, "unchanged", 0, 0)
    touched = sum(changed.values())
    if created or shrunk or not merged or touched > FULL_SHARE * sum(counts.values()):
        wh.execute(f"DELETE FROM {table}")
        wh.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM ({latest_sql(ds)}) v WHERE _op <> 'D'")
        _write_ledger(wh, ds, counts, replace_all=True)
        if follower is not None:
            follower.after(None)
        return SyncResult(ds.name, "rebuilt", len(counts), sum(counts.values()))
    _stage_batches(wh, list(changed))
    wh.execute(f"DROP TABLE IF EXISTS {KEYS}")
    wh.execute(
        f"CREATE TEMP TABLE {KEYS} AS SELECT DISTINCT {org} AS _q_o, {key} AS _q_k FROM {ds.table} "
        f"WHERE {ds.batch} IN (SELECT batch_id FROM {BATCHES})"
    )
    if follower is not None:
        follower.before(KEYS)
    wh.execute(f"DELETE FROM {table} WHERE ({org}, {key}) IN (SELECT _q_o, _q_k FROM {KEYS})")
    # the changed batches landed after every other (ingest time first in the version order): a touched key's latest
    # version is among their rows, so only those are read; else all raw versions of the touched keys
    source = (
        f"{ds.table} t WHERE t.{ds.batch} IN (SELECT batch_id FROM {BATCHES})"
        if _newest(spans, set(changed))
        else f"{ds.table} t JOIN {KEYS} k ON k._q_o = t.{org} AND k._q_k = t.{key}"
    )
    versions = (
        f"SELECT t.*, row_number() OVER (PARTITION BY t.{org}, t.{key} ORDER BY {version_order('t')}) AS _q_rn "
        f"FROM {source}"
    )
    wh.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM ({versions}) v WHERE _q_rn = 1 AND _op <> 'D'")
    if follower is not None:
        follower.after(KEYS)
    wh.execute(f"DROP TABLE IF EXISTS {KEYS}")
    _write_ledger(wh, ds, changed, replace_all=False)
    wh.execute(f"DROP TABLE IF EXISTS {BATCHES}")
    return SyncResult(ds.name, "merged", len(changed), touched)
