"""Bulk loading of polars frames: DuckDB inserts from Arrow, PostgreSQL uses COPY (CSV over the wire)."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from warehouse.core import Warehouse

COPY_CHUNK_ROWS = 50_000


def quote_ident(name: str) -> str:
    """Quote an identifier for both DuckDB and PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def _pg_csv(frame: pl.DataFrame) -> bytes:
    """Serialise a frame as PostgreSQL CSV: nulls unquoted-empty, text quoted, bytea as \\x hex."""
    exprs = []
    for name, dtype in frame.schema.items():
        if dtype == pl.Binary:
            exprs.append((pl.lit("\\x") + pl.col(name).bin.encode("hex")).alias(name))
        elif dtype in (pl.List, pl.Struct) or isinstance(dtype, pl.List | pl.Struct):
            exprs.append(pl.col(name).cast(pl.String).alias(name))
        else:
            exprs.append(pl.col(name))
    buffer = io.BytesIO()
    frame.select(exprs).write_csv(
        buffer,
        include_header=False,
        null_value="",
        quote_style="non_numeric",
        datetime_format="%Y-%m-%d %H:%M:%S%.f",
    )
    return buffer.getvalue()


def over_arrow(wh: Warehouse, name: str, table: Any) -> Callable[[str], None]:
    """A runner of DuckDB statements (not queries) that read the Arrow `table` as relation `name`.

    Unlike `register`, whose view a transaction keeps in its catalog undo log — and with it the whole Arrow
    table — until it ends, the relation is bound per statement: a long transaction of many batches holds none.
    """
    relation = wh.conn.from_arrow(table)

    def run(sql: str) -> None:
        relation.query(name, sql)

    return run


def load_frame(wh: Warehouse, qualified: str, frame: pl.DataFrame) -> int:
    """Append `frame` to `qualified` matching columns by name; returns the number of rows written."""
    if frame.height == 0:
        return 0
    cols = ", ".join(quote_ident(c) for c in frame.columns)
    if wh.dialect == "duckdb":
        view = "_hutong_load_frame"
        over_arrow(wh, view, frame.to_arrow())(f"INSERT INTO {qualified} ({cols}) SELECT {cols} FROM {view}")
        return frame.height
    with wh.conn.cursor() as cur:
        for start in range(0, frame.height, COPY_CHUNK_ROWS):
            chunk = frame.slice(start, COPY_CHUNK_ROWS)
            with cur.copy(f"COPY {qualified} ({cols}) FROM STDIN WITH (FORMAT csv)") as copy:
                copy.write(_pg_csv(chunk))
    return frame.height
