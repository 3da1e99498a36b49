"""Warehouse layer: the only place Hutong opens database connections."""

from warehouse.core import SCHEMAS, Warehouse, WarehouseError, WarehouseTarget, parse_url
from warehouse.ddl import ensure_core
from warehouse.raw import RawAppendResult, append_raw, ensure_raw_table

__all__ = [
    "SCHEMAS",
    "RawAppendResult",
    "Warehouse",
    "WarehouseError",
    "WarehouseTarget",
    "append_raw",
    "ensure_core",
    "ensure_raw_table",
    "parse_url",
]
