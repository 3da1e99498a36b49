"""Check types: each turns a rule's parameters into a SQL condition that is TRUE for a failing record."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from quality.catalog import CatalogError, Rule
from warehouse.dialect import regex_match

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")


def _column(rule: Rule) -> str:
    column = str(rule.params.get("column", ""))
    if not _IDENT.match(column):
        raise CatalogError(f"rule {rule.id}: column {column!r} must be a plain lower-case column name")
    return column


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def not_null(rule: Rule, dialect: str) -> str:
    column = _column(rule)
    return f"({column} IS NULL OR trim(CAST({column} AS VARCHAR)) = '')"


def accepted_values(rule: Rule, dialect: str) -> str:
    values = rule.params.get("values") or []
    if not values:
        raise CatalogError(f"rule {rule.id}: accepted_values needs a non-empty 'values' list")
    column = _column(rule)
    return f"({column} IS NOT NULL AND CAST({column} AS VARCHAR) NOT IN ({', '.join(_literal(v) for v in values)}))"


def regex(rule: Rule, dialect: str) -> str:
    column = _column(rule)
    pattern = _literal(rule.params["pattern"])
    return f"({column} IS NOT NULL AND NOT {regex_match(dialect, f'CAST({column} AS VARCHAR)', pattern)})"


def expression(rule: Rule, dialect: str) -> str:
    """A boolean SQL expression over the dataset's columns that must hold (NULL counts as failing)."""
    expr = str(rule.params.get("expression", "")).strip()
    if not expr or ";" in expr:
        raise CatalogError(f"rule {rule.id}: expression must be one SQL boolean expression")
    return f"(({expr}) IS NOT TRUE)"


CHECK_TYPES: dict[str, Callable[[Rule, str], str]] = {
    "not_null": not_null,
    "accepted_values": accepted_values,
    "regex": regex,
    "expression": expression,
}


def failure_condition(rule: Rule, dialect: str) -> str:
    """SQL that is TRUE for records failing `rule`."""
    try:
        build = CHECK_TYPES[rule.check_type]
    except KeyError as exc:
        known = ", ".join(CHECK_TYPES)
        raise CatalogError(f"rule {rule.id}: unknown check_type {rule.check_type!r}; known: {known}") from exc
    return build(rule, dialect)
