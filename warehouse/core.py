"""The one way Hutong talks to its warehouse: embedded DuckDB (default) or PostgreSQL, chosen by URL."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl

SCHEMAS = ("raw", "ops", "mpi", "quality", "feeds")


DUCKDB_MEMORY_LIMIT = "1GB"


class WarehouseError(Exception):
    """The warehouse cannot be reached or used; the message says what to fix."""


@dataclass(frozen=True)
class WarehouseTarget:
    """A parsed warehouse URL."""

    dialect: str  # duckdb | postgres
    url: str
    path: Path | None = None  # DuckDB file
    host: str = ""
    port: int = 5432
    user: str = ""
    password: str = ""
    database: str = ""

    @property
    def display(self) -> str:
        """The URL without its password, for messages."""
        if self.dialect == "duckdb":
            return f"duckdb:///{self.path}"
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"


def parse_url(url: str) -> WarehouseTarget:
    """Parse `duckdb:///path/to/file.duckdb` or `postgresql://user:pass@host:port/db`."""
    parts = urlsplit(url)
    if parts.scheme == "duckdb":
        raw_path = unquote(url[len("duckdb://") :])
        if raw_path in ("", "/"):
            raise WarehouseError(f"warehouse URL {url!r} names no file; use duckdb:///path/to/hutong.duckdb")
        path = Path(raw_path[1:] if raw_path.startswith("//") else raw_path)
        return WarehouseTarget(dialect="duckdb", url=url, path=path)
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        database = parts.path.lstrip("/")
        if not database:
            raise WarehouseError(f"warehouse URL {url!r} names no database; use postgresql://user@host:5432/dbname")
        return WarehouseTarget(
            dialect="postgres",
            url=url,
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=unquote(parts.username or "postgres"),
            password=unquote(parts.password or ""),
            database=database,
        )
    raise WarehouseError(
        f"warehouse URL {url!r} is not supported; use duckdb:///path/file.duckdb or postgresql://user@host:port/db"
    )


_PLACEHOLDER = re.compile(r"'(?:[^']|'')*'|\?")


def _to_pyformat(sql: str) -> str:
    """Translate `?` placeholders (outside string literals) to psycopg's `%s`, escaping literal `%`."""
    sql = sql.replace("%", "%%")
    return _PLACEHOLDER.sub(lambda m: "%s" if m.group(0) == "?" else m.group(0), sql)


class Warehouse:
    """A short-lived connection to the warehouse. Use as a context manager; close it before dbt runs.

    SQL uses `?` positional parameters on both dialects.
    """

    def __init__(self, url: str, read_only: bool = False) -> None:
        self.target = parse_url(url)
        self.dialect = self.target.dialect
        self.read_only = read_only
        self._conn: Any = None
        self._in_tx = False
        self._tx_serial = 0  # counts outermost transactions, so caches can tell one from the next

    # -- connection ------------------------------------------------------------------------------
    def connect(self) -> Warehouse:
        if self._conn is not None:
            return self
        if self.dialect == "duckdb":
            import duckdb

            assert self.target.path is not None
            if not self.read_only:
                self.target.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                # bounded memory: DuckDB spills to disk beyond this (HUTONG_DUCKDB_MEMORY_LIMIT, e.g. 4GB on big hosts)
                settings = {
                    "memory_limit": os.environ.get("HUTONG_DUCKDB_MEMORY_LIMIT", DUCKDB_MEMORY_LIMIT),
                    "checkpoint_threshold": "256MB",
                }
                self._conn = duckdb.connect(str(self.target.path), read_only=self.read_only, config=settings)
            except duckdb.IOException as exc:
                raise WarehouseError(
                    f"cannot open DuckDB warehouse {self.target.path}: {str(exc).splitlines()[0]} "
                    "(another process may hold it: stop `make serve` runs or other hutong commands)"
                ) from exc
        else:
            import psycopg

            try:
                self._conn = psycopg.connect(
                    host=self.target.host,
                    port=self.target.port,
                    user=self.target.user,
                    password=self.target.password or None,
                    dbname=self.target.database,
                    autocommit=True,
                    connect_timeout=10,
                )
            except psycopg.OperationalError as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise WarehouseError(
                    f"cannot reach PostgreSQL warehouse {self.target.display}: {first} "
                    "(check HUTONG_WAREHOUSE_URL and that the server is running)"
                ) from exc
        return self

    def sibling(self) -> Warehouse:
        """Another connection to the same warehouse, with transactions of its own (work in another thread):
        on DuckDB a cursor of this database instance (same settings, same memory limit), on PostgreSQL a new
        connection. Close it when done."""
        other = Warehouse(self.target.url, self.read_only)
        if self.dialect == "duckdb":
            other._conn = self.conn.cursor()
            return other
        return other.connect()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Warehouse:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def in_transaction(self) -> bool:
        """Whether statements now run inside `transaction()` (uncommitted until it ends)."""
        return self._in_tx

    @property
    def transaction_serial(self) -> int:
        """Which outermost `transaction()` is (or was last) open: a new number for each."""
        return self._tx_serial

    @property
    def conn(self) -> Any:
        """The driver connection (duckdb or psycopg) for code that needs driver features."""
        return self.connect()._conn

    # -- statements ------------------------------------------------------------------------------
    def _sql(self, sql: str, params: Sequence[Any] | None) -> str:
        return _to_pyformat(sql) if self.dialect == "postgres" and params else sql

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Run one statement."""
        if self.dialect == "duckdb":
            self.conn.execute(sql, list(params) if params else None)
        else:
            with self.conn.cursor() as cur:
                cur.execute(self._sql(sql, params), params or None)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "duckdb":
            self.conn.executemany(sql, [list(r) for r in rows])
        else:
            with self.conn.cursor() as cur:
                cur.executemany(_to_pyformat(sql), rows)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a query and return all rows as tuples (small results only)."""
        if self.dialect == "duckdb":
            return self.conn.execute(sql, list(params) if params else None).fetchall()
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql, params), params or None)
            return cur.fetchall() if cur.description else []

    def query_dicts(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        if self.dialect == "duckdb":
            cur = self.conn.execute(sql, list(params) if params else None)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql, params), params or None)
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    def query_df(self, sql: str, params: Sequence[Any] | None = None) -> pl.DataFrame:
        """Run a query and return a polars DataFrame."""
        if self.dialect == "duckdb":
            table = self.conn.sql(sql, params=list(params) if params else None).to_arrow_table()
            return pl.from_arrow(table)  # type: ignore[return-value]
        with self.conn.cursor() as cur:
            cur.execute(self._sql(sql, params), params or None)
            names = [d.name for d in cur.description]
            rows = cur.fetchall()
        return pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    def iter_batches(self, sql: str, params: Sequence[Any] | None = None, size: int = 50_000) -> Iterator[pl.DataFrame]:
        """Stream a query's result in polars batches (bounded memory)."""
        if self.dialect == "duckdb":
            relation = self.conn.sql(sql, params=list(params) if params else None)
            for batch in relation.to_arrow_reader(size):
                yield pl.from_arrow(batch)  # type: ignore[misc]
            return
        with self.transaction(), self.conn.cursor(name="hutong_stream") as cur:
            cur.itersize = size
            cur.execute(self._sql(sql, params), params or None)
            names = [d.name for d in cur.description]
            while rows := cur.fetchmany(size):
                yield pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)

    @contextmanager
    def transaction(self) -> Iterator[Warehouse]:
        """All statements inside commit together or not at all (nesting joins the outer transaction)."""
        if self._in_tx:
            yield self
            return
        self._in_tx = True
        self._tx_serial += 1
        try:
            if self.dialect == "duckdb":
                self.conn.execute("BEGIN TRANSACTION")
                try:
                    yield self
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            else:
                with self.conn.transaction():
                    yield self
        finally:
            self._in_tx = False

    # -- catalog ---------------------------------------------------------------------------------
    def table_exists(self, qualified: str) -> bool:
        schema, table = qualified.split(".", 1)
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, table],
            )
        )

    def tables(self, schema: str) -> list[str]:
        """Base tables of a schema (names only, sorted)."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE' "
            "ORDER BY table_name",
            [schema],
        )
        return [r[0] for r in rows]

    def columns(self, qualified: str) -> list[str]:
        schema, table = qualified.split(".", 1)
        rows = self.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return [r[0] for r in rows]

    def estimated_rows(self, tables: list[str]) -> dict[str, int]:
        """Rows of `schema.table`s as the catalog estimates them (no scan: for ordering work by size, not for
        counting); tables that do not exist are absent."""
        if self.dialect == "duckdb":
            sql = "SELECT schema_name || '.' || table_name, estimated_size FROM duckdb_tables()"
        else:
            sql = ("SELECT n.nspname || '.' || c.relname, greatest(c.reltuples, 0) FROM pg_class c "
                   "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p')")  # fmt: skip
        wanted = set(tables)
        return {str(t): int(n or 0) for t, n in self.query(sql) if t in wanted}

    def count(self, qualified: str, where: str = "", params: Sequence[Any] | None = None) -> int:
        sql = f"SELECT count(*) FROM {qualified}" + (f" WHERE {where}" if where else "")
        return int(self.scalar(sql, params) or 0)

    # -- bulk load -------------------------------------------------------------------------------
    def load(self, qualified: str, frame: pl.DataFrame) -> int:
        """Append a polars frame to an existing table (columns by name). DuckDB: Arrow insert; PostgreSQL: COPY."""
        from warehouse.load import load_frame

        return load_frame(self, qualified, frame)
