"""Payload formats of the export feeds: build one item per record, package items into one payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from marts.feed_config import Feed


@dataclass
class Record:
    """One record to feed: its row (identifiers already masked per the contract) and component rows."""

    key: str
    org_code: str
    row: dict[str, Any]
    components: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    origin: str | None = None
    batch_id: str | None = None
    op: str = "I"
    body: str | None = None  # canonical JSON of row + components, set by the delivery engine (hashed once)


class BuildError(Exception):
    """The record cannot be turned into a valid payload; it is excluded with this reason."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


class Format(Protocol):
    extension: str
    content_type: str

    def build(self, record: Record) -> Any: ...

    def package(self, items: list[Any]) -> bytes: ...


def build_each(fmt: Format, records: list[Record]) -> list[Any]:
    """Build a page of records: each item, or the BuildError that holds the record back (in order). Formats with
    a `build_many` of their own (FHIR: validation in worker processes) do the page at once."""
    many = getattr(fmt, "build_many", None)
    if many is not None:
        return many(records)
    out: list[Any] = []
    for record in records:
        try:
            out.append(fmt.build(record))
        except BuildError as exc:
            out.append(exc)
    return out


def plain(value: Any) -> Any:
    """A JSON/CSV-friendly scalar: timestamps as 'YYYY-MM-DD HH:MM:SS', dates ISO, decimals as float."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def make_format(feed: Feed) -> Format:
    """The format object for a feed (by `feed.format`)."""
    if feed.format in ("csv", "jsonl"):
        from marts.formats.dataset import DatasetFormat

        return DatasetFormat(feed)
    if feed.format == "fhir":
        from marts.formats.fhir import FhirFormat

        return FhirFormat(feed)
    from marts.formats.cda import CdaFormat

    return CdaFormat(feed)
