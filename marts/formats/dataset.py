"""Data-set files (CSV with BOM for Excel users, or JSON Lines) for platform-to-platform registration."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from marts.feed_config import Feed
from marts.formats import Record, plain


class DatasetFormat:
    """One line per record: the feed's columns plus `_op` (I new, U changed, D gone from the source)."""

    supports_delete = True

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.columns = [c.name for c in feed.columns] + ["_op"]
        self.csv = feed.format == "csv"
        self.extension = "csv" if self.csv else "jsonl"
        self.content_type = "text/csv; charset=utf-8" if self.csv else "application/x-ndjson; charset=utf-8"

    def build(self, record: Record) -> dict[str, Any]:
        if record.op == "D":
            key_column = self.columns[0]
            return {c: (record.key if c == key_column else None) for c in self.columns[:-1]} | {"_op": "D"}
        return {c: plain(record.row.get(c)) for c in self.columns[:-1]} | {"_op": record.op}

    def package(self, items: list[dict[str, Any]]) -> bytes:
        if not self.csv:
            return b"".join(json.dumps(i, ensure_ascii=False).encode() + b"\n" for i in items)
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        writer.writerow(self.columns)
        for item in items:
            writer.writerow(["" if item[c] is None else item[c] for c in self.columns])
        return out.getvalue().encode("utf-8-sig")
