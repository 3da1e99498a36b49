"""Fast HL7 v2 path: split batch files into messages, pick fields by `SEG-f.c.s` paths, validate, build ACKs.

Plain string splitting (≈100× hl7apy) for the bulk path; `connectors.hl7_reference` extracts the same fields with
hl7apy and a test proves both agree. Field positions come from `lis_fields.yaml`, not from code.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import yaml

FIELDS_FILE = Path(__file__).with_name("lis_fields.yaml")
ENVELOPE = ("FHS", "BHS", "BTS", "FTS")
_PATH = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?$")
_SEGMENT_ID = re.compile(r"^[A-Z][A-Z0-9]{2}$")
_ESCAPE = re.compile(r"\\(F|S|T|R|E|X[0-9A-Fa-f]*|\.br)\\")


@dataclass(frozen=True)
class FieldPath:
    """`SEG-field[.component[.subcomponent]]`, positions as the HL7 standard counts them (1-based)."""

    segment: str
    field: int
    component: int | None = None
    subcomponent: int | None = None


def parse_path(text: str) -> FieldPath:
    match = _PATH.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not an HL7 field path like PID-3.1")
    seg, fld, comp, sub = match.groups()
    return FieldPath(seg, int(fld), int(comp) if comp else None, int(sub) if sub else None)


MSH_FACILITY = FieldPath("MSH", 4, 1)
MSH_TYPE = FieldPath("MSH", 9, 1)
MSH_EVENT = FieldPath("MSH", 9, 2)
MSH_CONTROL_ID = FieldPath("MSH", 10)


@cache
def field_spec() -> dict[str, Any]:
    """lis_fields.yaml with its paths parsed: {'message': {column: FieldPath}, ..., 'accepted_types': set}."""
    raw = yaml.safe_load(FIELDS_FILE.read_text(encoding="utf-8"))
    spec: dict[str, Any] = {
        "accepted_types": frozenset(raw["accepted_types"]),
        "ack_error_codes": {str(k): str(v) for k, v in raw["ack_error_codes"].items()},
    }
    for group in ("message", "order", "result"):
        spec[group] = {column: parse_path(path) for column, path in raw[group].items()}
    return spec


@dataclass(frozen=True)
class Separators:
    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @classmethod
    def from_msh(cls, msh: str) -> Separators:
        if len(msh) < 8:
            return cls()
        enc = msh[4:8]
        return cls(msh[3], enc[0], enc[1], enc[2], enc[3]) if len(enc) == 4 else cls()


def unescape(value: str, sep: Separators) -> str:
    """Decode HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\)."""
    if sep.escape not in value:
        return value
    table = {"F": sep.field, "S": sep.component, "T": sep.subcomponent, "R": sep.repetition, "E": sep.escape,
             ".br": "\n"}  # fmt: skip

    def replace(match: re.Match[str]) -> str:
        code = match.group(1)
        if code.startswith("X"):
            try:
                return bytes.fromhex(code[1:]).decode("utf-8", errors="replace")
            except ValueError:
                return match.group(0)
        return table[code]

    return _ESCAPE.sub(replace, value) if sep.escape == "\\" else value


@dataclass
class Message:
    """One HL7 message: its segments (each split into fields) and the text as received."""

    text: str
    segments: list[list[str]]
    sep: Separators
    line: int  # 1-based segment line of MSH within its file (0 for a single message)

    def get(self, fields: list[str] | None, path: FieldPath) -> str | None:
        """The value at `path` in a segment's fields (first repetition), unescaped; None when absent or empty."""
        if fields is None:
            return None
        index = path.field - 1 if path.segment == "MSH" else path.field
        if index >= len(fields) or index < 1:
            return None
        value = fields[index]
        if not value:
            return None
        if path.segment != "MSH" or path.field != 2:
            value = value.split(self.sep.repetition, 1)[0]
        if path.component is not None:
            parts = value.split(self.sep.component)
            if path.component > len(parts):
                return None
            value = parts[path.component - 1]
            if path.subcomponent is not None:
                subs = value.split(self.sep.subcomponent)
                if path.subcomponent > len(subs):
                    return None
                value = subs[path.subcomponent - 1]
        return unescape(value, self.sep) or None

    def first(self, segment: str) -> list[str] | None:
        for fields in self.segments:
            if fields[0] == segment:
                return fields
        return None

    @property
    def control_id(self) -> str | None:
        return self.get(self.segments[0], MSH_CONTROL_ID) if self.segments else None


@dataclass
class Orphan:
    """Segments that belong to no message (no MSH before them): quarantined as one record."""

    text: str
    line: int
    reason: str


def split_segments(text: str) -> list[str]:
    return [s for s in text.replace("\r\n", "\r").replace("\n", "\r").split("\r") if s.strip()]


def split_messages(text: str, one_patient_per_message: bool = True) -> list[Message | Orphan]:
    """The messages of a batch file (FHS/BHS … BTS/FTS envelopes dropped) or of a single message.

    A PID after an OBR/OBX in the same message starts a headless message when the feed promises one patient per
    message: that is how a message whose MSH was lost shows up inside a batch file.
    """
    out: list[Message | Orphan] = []
    current: list[str] = []
    start = 0
    headless = False
    seen_results = False

    def close() -> None:
        if not current:
            return
        body = "\r".join(current) + "\r"
        if headless:
            out.append(Orphan(body, start, f"segments from line {start} have no MSH header (message lost its MSH)"))
        else:
            sep = Separators.from_msh(current[0])
            out.append(Message(body, [s.split(sep.field) for s in current], sep, start))

    for number, segment in enumerate(split_segments(text), start=1):
        seg_id = segment[:3]
        if seg_id in ENVELOPE:
            continue
        if seg_id == "MSH":
            close()
            current, start, headless, seen_results = [segment], number, False, False
            continue
        if not current or (one_patient_per_message and seg_id == "PID" and seen_results):
            close()
            current, start, headless, seen_results = [], number, True, False
        current.append(segment)
        if seg_id in ("OBR", "OBX"):
            seen_results = True
    close()
    return out


def problem(message: Message) -> tuple[str, str] | None:
    """Why a message cannot be accepted (error code, reason), or None. Content defects are not problems here."""
    for fields in message.segments:
        if not _SEGMENT_ID.match(fields[0]):
            return "hl7_bad_segment", f"segment id {fields[0][:10]!r} is not three upper-case letters/digits"
    msh = message.segments[0]
    if len(msh) < 12:
        return "hl7_bad_msh", f"MSH has {len(msh) + 1} fields; MSH-12 (version) at least is required"
    if not message.control_id:
        return "hl7_no_control_id", "MSH-10 (message control id) is empty"
    kind = f"{message.get(msh, MSH_TYPE)}^{message.get(msh, MSH_EVENT)}"
    if kind not in field_spec()["accepted_types"]:
        accepted = ", ".join(sorted(field_spec()["accepted_types"]))
        return "hl7_unsupported_type", f"message type {kind} is not accepted on this feed (accepted: {accepted})"
    return None


def hl7_time(value: str | None) -> datetime | None:
    """An HL7 DTM (YYYYMMDD[HHMM[SS]][+ZZZZ]) as a naive local datetime; None when unreadable."""
    if not value:
        return None
    digits = value.split("+", 1)[0].split("-", 1)[0].split(".", 1)[0]
    try:
        if len(digits) >= 14:
            return datetime.strptime(digits[:14], "%Y%m%d%H%M%S")
        if len(digits) >= 12:
            return datetime.strptime(digits[:12], "%Y%m%d%H%M")
        if len(digits) >= 8:
            return datetime.strptime(digits[:8], "%Y%m%d")
    except ValueError:
        return None
    return None


Plan = tuple[tuple[str, int, int, int], ...]


@cache
def _plans() -> dict[str, Plan]:
    """Per group, (column, field index in the split segment, component, subcomponent) with 0 for 'whole'."""
    plans = {}
    for group in ("message", "order", "result"):
        plans[group] = tuple(
            (column, path.field - 1 if path.segment == "MSH" else path.field, path.component or 0,
             path.subcomponent or 0)
            for column, path in field_spec()[group].items()
        )  # fmt: skip
    return plans


def _pick(fields: list[str] | None, index: int, component: int, subcomponent: int, sep: Separators) -> str | None:
    """The fast equivalent of `Message.get` for a precomputed position."""
    if fields is None or index >= len(fields):
        return None
    value = fields[index]
    if not value:
        return None
    if sep.repetition in value and not (index == 1 and fields[0] == "MSH"):
        value = value.split(sep.repetition, 1)[0]
    if component:
        if sep.component in value:
            parts = value.split(sep.component)
            value = parts[component - 1] if component <= len(parts) else ""
        elif component != 1:
            return None
        if subcomponent and value:
            if sep.subcomponent in value:
                parts = value.split(sep.subcomponent)
                value = parts[subcomponent - 1] if subcomponent <= len(parts) else ""
            elif subcomponent != 1:
                return None
    if sep.escape in value:
        value = unescape(value, sep)
    return value or None


def extract(message: Message) -> tuple[dict[str, str | None], list[dict[str, str | None]], list[dict[str, Any]]]:
    """The message row, its OBR rows and its OBX rows (each OBX row carries `obr_index`, 0 before any OBR)."""
    plans = _plans()
    sep = message.sep
    header: dict[str, list[str]] = {}
    orders: list[dict[str, str | None]] = []
    results: list[dict[str, Any]] = []
    order_plan, result_plan = plans["order"], plans["result"]
    for fields in message.segments:
        seg = fields[0]
        if seg == "OBX":
            result: dict[str, Any] = {c: _pick(fields, i, k, s, sep) for c, i, k, s in result_plan}
            result["obr_index"] = len(orders)
            results.append(result)
        elif seg == "OBR":
            orders.append({c: _pick(fields, i, k, s, sep) for c, i, k, s in order_plan})
        elif seg in ("MSH", "PID", "PV1") and seg not in header:
            header[seg] = fields
    row = {
        c: _pick(header.get(seg), i, k, s, sep)
        for (c, i, k, s), seg in zip(plans["message"], _message_segments(), strict=True)
    }
    return row, orders, results


@cache
def _message_segments() -> tuple[str, ...]:
    return tuple(path.segment for path in field_spec()["message"].values())


@lru_cache(maxsize=4)
def _stamp(second: int) -> str:
    """An ACK's MSH-7 for a POSIX second (cached: a listener acknowledges many messages a second)."""
    return datetime.fromtimestamp(second).strftime("%Y%m%d%H%M%S")


def ack(message: Message | None, code: str, text: str = "", error_code: str = "", now: datetime | None = None) -> str:
    """An HL7 v2.5 ACK (MSA-1 AA/AE/AR, MSA-2 the control id; ERR with the reason for AE/AR)."""
    stamp = _stamp(int(time.time())) if now is None else now.strftime("%Y%m%d%H%M%S")
    msh = message.segments[0] if message and message.segments else []
    sep = message.sep if message else Separators()

    def field(n: int) -> str:
        index = n - 1
        return msh[index] if 0 < index < len(msh) else ""

    control = field(10)
    event = message.get(msh, MSH_EVENT) if message else None
    clean = text.replace("\r", " ").replace("\n", " ")
    for raw, escaped in ((sep.escape, "\\E\\"), (sep.field, "\\F\\"), (sep.component, "\\S\\"),
                         (sep.subcomponent, "\\T\\"), (sep.repetition, "\\R\\")):  # fmt: skip
        clean = clean.replace(raw, escaped)
    segments = [
        f"MSH{sep.field}{sep.component}{sep.repetition}{sep.escape}{sep.subcomponent}|HUTONG|HUTONG|{field(3)}|"
        f"{field(4)}|{stamp}||ACK^{event or ''}^ACK|ACK{control or stamp}|P|2.5",
        f"MSA|{code}|{control}" + (f"|{clean}" if clean else ""),
    ]
    if code != "AA":
        hl7_code = field_spec()["ack_error_codes"].get(error_code, "207")
        segments.append(f"ERR|||{hl7_code}^{error_code or 'error'}^HL70357|E||||{clean}")
    return "\r".join(segments) + "\r"
