"""Small SQL fragments that differ between DuckDB and PostgreSQL."""

from __future__ import annotations

LOGICAL_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "text": "VARCHAR",
        "int": "BIGINT",
        "float": "DOUBLE",
        "bool": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "blob": "BLOB",
        "json": "JSON",
    },
    "postgres": {
        "text": "TEXT",
        "int": "BIGINT",
        "float": "DOUBLE PRECISION",
        "bool": "BOOLEAN",
        "date": "DATE",
        "timestamp": "TIMESTAMP",
        "blob": "BYTEA",
        "json": "JSONB",
    },
}


def sql_type(dialect: str, logical: str) -> str:
    """The column type for a logical contract type."""
    try:
        return LOGICAL_TYPES[dialect][logical]
    except KeyError as exc:
        raise ValueError(f"unknown logical type {logical!r} for {dialect}") from exc


def regex_match(dialect: str, expr: str, pattern_sql: str) -> str:
    """A boolean SQL expression: does `expr` match the regular expression `pattern_sql` (a SQL literal)?"""
    if dialect == "duckdb":
        return f"regexp_full_match({expr}, {pattern_sql})"
    return f"({expr} ~ ('^(?:' || {pattern_sql} || ')$'))"


def md5_text(expr: str) -> str:
    """md5 hex digest of a text expression (same function name on both dialects)."""
    return f"md5({expr})"
