"""LIS connector: HL7 v2 files (daily batch files, MLLP spool segments) into raw.lis_message / lis_order / lis_result.

Each message lands as one raw.lis_message row (the whole message text kept for audit), one raw.lis_order row per OBR
and one raw.lis_result row per OBX, all with the message control id as source key and `<file>#<control id>` as
origin. A message that cannot be accepted (no MSH, no control id, unsupported type, broken segment) is quarantined
with its bytes; the rest of the file lands. Content defects (missing patient id, odd values) land; quality rules
find them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from connectors import hl7
from connectors.drop import Parsed
from connectors.ledger import QuarantineRecord
from hutong.config import SourceConfig

SOURCE_KIND = "lis"
SOURCE_SYSTEM = "LIS"
MESSAGE_TABLE, ORDER_TABLE, RESULT_TABLE = "lis_message", "lis_order", "lis_result"


def decode(data: bytes) -> tuple[str, str]:
    """Text of an HL7 file: UTF-8 (BOM allowed), else GB18030 (Chinese LIS often send GBK). Raises on neither."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


class _Columns:
    """Column-wise row builder (much cheaper than one dict per row for hundreds of thousands of rows)."""

    def __init__(self, payload: Iterable[str]) -> None:
        self.payload = list(payload)
        self.data: dict[str, list[Any]] = {c: [] for c in [*self.payload, "_source_key", "_source_updated_at",
                                                             "_origin"]}  # fmt: skip

    def add(self, values: dict[str, Any], key: str, updated: Any, origin: str) -> None:
        for column in self.payload:
            self.data[column].append(values.get(column))
        self.data["_source_key"].append(key)
        self.data["_source_updated_at"].append(updated)
        self.data["_origin"].append(origin)

    def frame(self, org_code: str) -> pl.DataFrame:
        n = len(self.data["_source_key"])
        columns = {c: pl.Series(c, self.data[c], dtype=pl.String) for c in self.payload}
        return pl.DataFrame(columns).with_columns(
            pl.lit(org_code).alias("_org_code"),
            pl.lit(SOURCE_SYSTEM).alias("_source_system"),
            pl.Series("_source_key", self.data["_source_key"], dtype=pl.String),
            pl.Series("_source_updated_at", self.data["_source_updated_at"], dtype=pl.Datetime("us")),
            pl.Series("_deleted", [False] * n, dtype=pl.Boolean),
            pl.Series("_origin", self.data["_origin"], dtype=pl.String),
        )


@dataclass
class LisFiles:
    """HL7 v2 files in an institution's LIS drop folder (batch files and MLLP spool segments)."""

    one_patient_per_message: bool = True
    kind: str = SOURCE_KIND
    source_system: str = SOURCE_SYSTEM
    entity: str = MESSAGE_TABLE

    def files(self, folder: Path) -> Iterable[Path]:
        return folder.rglob("*.hl7")

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed:
        try:
            text, _ = decode(data)
        except UnicodeDecodeError as exc:
            return Parsed(rejected=("hl7_undecodable", f"neither UTF-8 nor GB18030: {exc}"))
        return parse_text(text, rel, org_code, self.one_patient_per_message)


def parse_text(text: str, rel: str, org_code: str, one_patient_per_message: bool = True) -> Parsed:
    """Messages of one file or spool segment as raw frames plus quarantined messages."""
    spec = hl7.field_spec()
    messages = _Columns([*spec["message"], "message_text"])
    orders = _Columns(["control_id", "order_index", *spec["order"]])
    results = _Columns(["control_id", "order_index", "result_index", *spec["result"]])
    parsed = Parsed()
    for item in hl7.split_messages(text, one_patient_per_message):
        parsed.rows_in += 1
        if isinstance(item, hl7.Orphan):
            parsed.quarantined.append(QuarantineRecord(f"{rel}#line {item.line}", "hl7_missing_msh", item.reason,
                                                       item.text.encode("utf-8")))  # fmt: skip
            continue
        issue = hl7.problem(item)
        control = item.control_id
        if issue:
            origin = f"{rel}#{control}" if control else f"{rel}#line {item.line}"
            parsed.quarantined.append(QuarantineRecord(origin, issue[0], issue[1], item.text.encode("utf-8")))
            continue
        assert control is not None
        row, order_rows, result_rows = hl7.extract(item)
        row["message_text"] = item.text
        updated = hl7.hl7_time(row["message_time"])
        origin = f"{rel}#{control}"
        messages.add(row, control, updated, origin)
        for index, order in enumerate(order_rows, start=1):
            order["control_id"], order["order_index"] = control, str(index)
            orders.add(order, f"{control}:{index}", updated, origin)
        for index, result in enumerate(result_rows, start=1):
            result["control_id"], result["order_index"] = control, str(result.pop("obr_index"))
            result["result_index"] = str(index)
            results.add(result, f"{control}:{result['order_index']}:{index}", updated, origin)
    parsed.tables = {
        MESSAGE_TABLE: messages.frame(org_code),
        ORDER_TABLE: orders.frame(org_code),
        RESULT_TABLE: results.frame(org_code),
    }
    return parsed


def make_kind(source: SourceConfig) -> LisFiles:
    return LisFiles(one_patient_per_message=bool(source.get("one_patient_per_message", True)))
