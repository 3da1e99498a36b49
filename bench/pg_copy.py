"""Copy the landed tables (raw, ops, mpi) of a DuckDB warehouse into a PostgreSQL warehouse with COPY.

The PostgreSQL benchmarks need the same sources as the DuckDB ones; ingesting a county again into PostgreSQL takes
longer than the build being measured. The tables are created as the platform creates them (core contracts with
their keys, raw tables with the key index) and filled with COPY ... FROM STDIN (CSV written by DuckDB).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import psycopg

from warehouse import Warehouse
from warehouse.ddl import ensure_core
from warehouse.raw import ensure_raw_table, lineage_columns

SCHEMAS = ("raw", "ops", "mpi")
CHUNK = 1 << 20


def _tables(duck: duckdb.DuckDBPyConnection, schema: str) -> dict[str, list[tuple[str, str]]]:
    rows = duck.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name IN (SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "AND table_type = 'BASE TABLE') ORDER BY table_name, ordinal_position",
        [schema, schema],
    ).fetchall()
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in rows:
        out.setdefault(table, []).append((column, dtype))
    return out


def copy_to_postgres(duck_path: Path, pg_url: str, scratch: Path, schemas: tuple[str, ...] = SCHEMAS) -> dict[str, int]:
    """Rows copied per table (tables PostgreSQL has no contract for are skipped); CSV files go to `scratch`."""
    duck = duckdb.connect(str(duck_path), read_only=True)
    copied: dict[str, int] = {}
    try:
        found = {s: _tables(duck, s) for s in schemas}
        with Warehouse(pg_url) as wh:
            ensure_core(wh)
            for table, columns in found.get("raw", {}).items():
                ensure_raw_table(wh, table, [c for c, _ in columns if c not in lineage_columns()])
        with psycopg.connect(pg_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as pg:
            for schema, tables in found.items():
                for table, columns in tables.items():
                    qualified = f"{schema}.{table}"
                    target = {r[0] for r in pg.execute(
                        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                        "AND table_name = %s", [schema, table]).fetchall()}  # fmt: skip
                    shared = [(c, t) for c, t in columns if c in target]
                    if not shared:
                        continue
                    names = ", ".join(f'"{c}"' for c, _ in shared)
                    # bytea in PostgreSQL's hex text form; everything else as DuckDB writes it
                    values = ", ".join(f"'\\x' || hex(\"{c}\")" if t == "BLOB" else f'"{c}"' for c, t in shared)
                    with tempfile.NamedTemporaryFile(suffix=".csv", dir=scratch) as tmp:
                        out = f"'{tmp.name}' (FORMAT csv, HEADER false)"
                        duck.execute(f"COPY (SELECT {values} FROM {qualified}) TO {out}")
                        pg.execute(f"TRUNCATE {qualified}")
                        copy_sql = f"COPY {qualified} ({names}) FROM STDIN (FORMAT csv)"
                        with pg.cursor() as cur, cur.copy(copy_sql) as cp, open(tmp.name, "rb") as fh:
                            while chunk := fh.read(CHUNK):
                                cp.write(chunk)
                    copied[qualified] = int(pg.execute(f"SELECT count(*) FROM {qualified}").fetchone()[0])
            pg.execute("ANALYZE")
    finally:
        duck.close()
    return copied
