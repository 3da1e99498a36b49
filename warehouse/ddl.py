"""Create the warehouse schemas and the core tables declared in `contracts.yaml`."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from warehouse.core import SCHEMAS, Warehouse
from warehouse.dialect import sql_type
from warehouse.load import quote_ident

CONTRACTS_FILE = Path(__file__).with_name("contracts.yaml")


@cache
def contracts() -> dict[str, Any]:
    """The parsed warehouse contracts (core tables and raw lineage columns)."""
    return yaml.safe_load(CONTRACTS_FILE.read_text(encoding="utf-8"))


def table_columns(qualified: str) -> dict[str, str]:
    """Logical column types of a core table."""
    return dict(contracts()["tables"][qualified]["columns"])


def create_table_sql(
    dialect: str,
    qualified: str,
    columns: dict[str, str],
    key: list[str] | None = None,
    compression: dict[str, str] | None = None,
) -> str:
    """`CREATE TABLE IF NOT EXISTS`; `compression` names a storage compression for some columns (DuckDB only)."""
    using = compression or {}
    cols = [
        f"{quote_ident(name)} {sql_type(dialect, logical)}"
        + (f" USING COMPRESSION {using[name]}" if name in using and dialect == "duckdb" else "")
        for name, logical in columns.items()
    ]
    if key:
        cols.append(f"PRIMARY KEY ({', '.join(quote_ident(k) for k in key)})")
    return f"CREATE TABLE IF NOT EXISTS {qualified} (\n  " + ",\n  ".join(cols) + "\n)"


def ensure_core(wh: Warehouse) -> None:
    """Create schemas and core tables if missing (idempotent); add columns a newer contract declares."""
    with wh.transaction():
        for schema in SCHEMAS:
            wh.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for qualified, spec in contracts()["tables"].items():
            columns = dict(spec["columns"])
            if not wh.table_exists(qualified):
                wh.execute(create_table_sql(wh.dialect, qualified, columns, spec.get("key")))
                continue
            existing = set(wh.columns(qualified))
            for name, logical in columns.items():
                if name not in existing:
                    wh.execute(
                        f"ALTER TABLE {qualified} ADD COLUMN {quote_ident(name)} {sql_type(wh.dialect, logical)}"
                    )
