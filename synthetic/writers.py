"""Where synthetic source tables go: a SQLite file (demo) or any SQLAlchemy database such as MariaDB."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from synthetic.his_schema import columns, create_statements

CHUNK = 5000


class TableWriter:
    """Creates a vendor's tables (dropping old ones) and appends rows in chunks."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.vendor = ""
        self._sqlite: sqlite3.Connection | None = None
        self._engine: Any = None

    def create(self, vendor: str) -> None:
        self.vendor = vendor
        if self.target.startswith("sqlite:///"):
            path = Path(self.target.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)
            self._sqlite = sqlite3.connect(path)
            self._sqlite.execute("PRAGMA journal_mode = OFF")
            self._sqlite.execute("PRAGMA synchronous = OFF")
            for statement in create_statements(vendor):
                self._sqlite.execute(statement)
            return
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        url = make_url(self.target)
        if url.database and url.get_backend_name() in ("mysql", "mariadb"):
            server = create_engine(url.set(database=""))
            with server.begin() as conn:
                conn.execute(text(f"CREATE DATABASE IF NOT EXISTS `{url.database}` CHARACTER SET utf8mb4"))
            server.dispose()
        self._engine = create_engine(self.target)
        with self._engine.begin() as conn:
            for statement in create_statements(vendor):
                table = statement.split()[2]
                conn.execute(text(f"DROP TABLE IF EXISTS {table}"))
                conn.execute(text(statement))

    def open(self, vendor: str) -> None:
        """Attach to an existing database of this vendor schema (daily increments)."""
        self.vendor = vendor
        if self.target.startswith("sqlite:///"):
            path = Path(self.target.removeprefix("sqlite:///"))
            if not path.is_file():
                raise FileNotFoundError(f"no synthetic HIS at {path}; run `hutong synth` first")
            self._sqlite = sqlite3.connect(path)
            return
        from sqlalchemy import create_engine

        self._engine = create_engine(self.target)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._sqlite is not None:
            return self._sqlite.execute(sql, params or {}).fetchall()
        from sqlalchemy import text

        with self._engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params or {})]

    def execute(self, sql: str, rows: list[dict[str, Any]]) -> None:
        """Run a parameterised statement (named :params) for each row."""
        if not rows:
            return
        if self._sqlite is not None:
            self._sqlite.executemany(sql, rows)
            return
        from sqlalchemy import text

        with self._engine.begin() as conn:
            conn.execute(text(sql), rows)

    def insert(self, table: str, rows: list[list[Any]]) -> None:
        if not rows:
            return
        cols = columns(self.vendor, table)
        if self._sqlite is not None:
            marks = ", ".join("?" for _ in cols)
            self._sqlite.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})", rows)
            return
        from sqlalchemy import text

        statement = text(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
        with self._engine.begin() as conn:
            for start in range(0, len(rows), CHUNK):
                conn.execute(statement, [dict(zip(cols, r, strict=True)) for r in rows[start : start + CHUNK]])

    def finish(self) -> None:
        if self._sqlite is not None:
            self._sqlite.commit()
            self._sqlite.close()
            self._sqlite = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
