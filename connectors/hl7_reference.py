"""Reference HL7 v2 extraction with hl7apy: the same `lis_fields.yaml` columns as the fast path, ≈100× slower.

Used to prove the fast parser right (tests), as the benchmark baseline, and to explain odd messages.
"""

from __future__ import annotations

from typing import Any

import hl7 as python_hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message as ApyMessage
from hl7apy.parser import parse_message

from connectors.hl7 import FieldPath, field_spec


def _position(element: Any) -> int:
    return int(element.name.rsplit("_", 1)[1])


def _value(message: ApyMessage, segment: Any | None, path: FieldPath) -> str | None:
    """The first repetition of a field (or one component / subcomponent), unescaped, as hl7apy sees it."""
    if segment is None:
        return None
    name = f"{path.segment}_{path.field}"
    fields = [f for f in segment.children if f.name == name]
    if not fields:
        return None
    node: Any = fields[0]
    for position in (path.component, path.subcomponent):
        if position is None:
            break
        children = [c for c in node.children if _position(c) == position]
        if not children:
            # a field with a single simple value has no component children: component 1 is the value itself
            if position == 1 and not node.children:
                continue
            return None
        node = children[0]
    text = node.to_er7()
    return _unescape(text) if text else None


def _unescape(text: str) -> str:
    """HL7 escape sequences decoded by python-hl7 (hl7apy keeps values escaped)."""
    if "\\" not in text:
        return text
    return python_hl7.parse("MSH|^~\\&|\r").unescape(text)


def parse(text: str) -> ApyMessage:
    """hl7apy parse of one message (segment separator CR), tolerant of local Z-segments and profiles."""
    return parse_message(text.replace("\r\n", "\r").replace("\n", "\r"), find_groups=False,
                         validation_level=VALIDATION_LEVEL.TOLERANT)  # fmt: skip


def extract(text: str) -> tuple[dict[str, str | None], list[dict[str, str | None]], list[dict[str, Any]]]:
    """Message, OBR and OBX rows for one message, like `connectors.hl7.extract`."""
    spec = field_spec()
    message = parse(text)
    header: dict[str, Any] = {}
    for segment in message.children:
        if segment.name in ("MSH", "PID", "PV1") and segment.name not in header:
            header[segment.name] = segment
    row = {column: _value(message, header.get(path.segment), path) for column, path in spec["message"].items()}
    orders: list[dict[str, str | None]] = []
    results: list[dict[str, Any]] = []
    for segment in message.children:
        if segment.name == "OBR":
            orders.append({column: _value(message, segment, path) for column, path in spec["order"].items()})
        elif segment.name == "OBX":
            result: dict[str, Any] = {c: _value(message, segment, p) for c, p in spec["result"].items()}
            result["obr_index"] = len(orders)
            results.append(result)
    return row, orders, results
