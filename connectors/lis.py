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

from connectors import hl7, hl7_columnar
from connectors.drop import Parsed, ParsedGroup
from connectors.ledger import QuarantineRecord
from hutong.config import SourceConfig

SOURCE_KIND = "lis"
SOURCE_SYSTEM = "LIS"
MESSAGE_TABLE, ORDER_TABLE, RESULT_TABLE = "lis_message", "lis_order", "lis_result"
LINEAGE_COLUMNS = ("_org_code", "_source_system", "_source_key", "_source_updated_at", "_deleted", "_origin")


def decode(data: bytes) -> tuple[str, str]:
    """Text of an HL7 file: UTF-8 (BOM allowed), else GB18030 (Chinese LIS often send GBK). Raises on neither."""
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("gb18030"), "gb18030"


class _Columns:
    """Column-wise row builder (much cheaper than one dict per row for hundreds of thousands of rows); rows of
    several files at once, each row with its file's index."""

    def __init__(self, payload: Iterable[str]) -> None:
        self.payload = list(payload)
        self.data: dict[str, list[Any]] = {c: [] for c in [*self.payload, "_source_key", "_source_updated_at",
                                                             "_origin", "_file"]}  # fmt: skip

    def add(self, values: dict[str, Any], key: str, updated: Any, origin: str, file: int) -> None:
        for column in self.payload:
            self.data[column].append(values.get(column))
        self.data["_source_key"].append(key)
        self.data["_source_updated_at"].append(updated)
        self.data["_origin"].append(origin)
        self.data["_file"].append(file)

    def frame(self, orgs: list[str]) -> pl.DataFrame:
        """The rows with lineage (`orgs`: org code of each file index) and column `_file`."""
        n = len(self.data["_source_key"])
        files = pl.Series("_file", self.data["_file"], dtype=pl.Int64)
        columns = {c: pl.Series(c, self.data[c], dtype=pl.String) for c in self.payload}
        return pl.DataFrame(columns).with_columns(
            pl.Series("_org_code", orgs, dtype=pl.String).gather(files),
            pl.lit(SOURCE_SYSTEM).alias("_source_system"),
            pl.Series("_source_key", self.data["_source_key"], dtype=pl.String),
            pl.Series("_source_updated_at", self.data["_source_updated_at"], dtype=pl.Datetime("us")),
            pl.Series("_deleted", [False] * n, dtype=pl.Boolean),
            pl.Series("_origin", self.data["_origin"], dtype=pl.String),
            files,
        )


class _SlowRows:
    """Rows the per-message path extracted, for all files of a group: each table's frame is built once."""

    def __init__(self) -> None:
        spec = hl7.field_spec()
        self.messages = _Columns([*spec["message"], "message_text"])
        self.orders = _Columns(["control_id", "order_index", *spec["order"]])
        self.results = _Columns(["control_id", "order_index", "result_index", *spec["result"]])

    def frames(self, orgs: list[str]) -> dict[str, pl.DataFrame]:
        return {MESSAGE_TABLE: self.messages.frame(orgs), ORDER_TABLE: self.orders.frame(orgs),
                RESULT_TABLE: self.results.frame(orgs)}  # fmt: skip


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
            text = decode(data)[0]
        except UnicodeDecodeError as exc:
            return Parsed(rejected=("hl7_undecodable", f"neither UTF-8 nor GB18030: {exc}"))
        return parse_texts([(text, rel)], org_code, self.one_patient_per_message)[0]

    def parse_group(self, files: list[tuple[Path, str, bytes, str]]) -> ParsedGroup:
        """Files of one or several institutions in one columnar pass (a file that does not decode is rejected)."""
        texts: list[tuple[str, str, str]] = []
        decoded: list[int] = []
        refused: dict[int, Parsed] = {}
        for index, (_, rel, data, org_code) in enumerate(files):
            try:
                texts.append((decode(data)[0], rel, org_code))
                decoded.append(index)
            except UnicodeDecodeError as exc:
                refused[index] = Parsed(rejected=("hl7_undecodable", f"neither UTF-8 nor GB18030: {exc}"))
        group = parse_group(texts, self.one_patient_per_message)
        if not refused:
            return group
        parsed = iter(group.files)
        positions = pl.Series("_file", decoded, dtype=pl.Int64)
        tables = {t: f.with_columns(positions.gather(f.get_column("_file"))) for t, f in group.tables.items()}
        return ParsedGroup([refused[i] if i in refused else next(parsed) for i in range(len(files))], tables)


def parse_text(text: str, rel: str, org_code: str, one_patient_per_message: bool = True) -> Parsed:
    """Messages of one file or spool segment as raw frames plus quarantined messages."""
    return parse_texts([(text, rel)], org_code, one_patient_per_message)[0]


def parse_texts(files: list[tuple[str, str]], org_code: str, one_patient_per_message: bool = True) -> list[Parsed]:
    """Several files' (text, relative path) at once, each file's rows in frames of its own."""
    group = parse_group([(text, rel, org_code) for text, rel in files], one_patient_per_message)
    parts = {t: f.partition_by("_file", as_dict=True, include_key=False) for t, f in group.tables.items()}
    for index, parsed in enumerate(group.files):
        parsed.tables = {t: parts[t].get((index,), f.clear().drop("_file")) for t, f in group.tables.items()}
        parsed.rows_out = None
    return group.files


def parse_group(files: list[tuple[str, str, str]], one_patient_per_message: bool = True) -> ParsedGroup:
    """Files' (text, relative path, org code) at once: the columnar path takes them all in one go, the messages
    it is unsure of go through the per-message path; rows of all files in one frame per table (`_file`)."""
    columnar = hl7_columnar.extract_files([text for text, _, _ in files], one_patient_per_message)
    slow = [Parsed() for _ in files]
    leftovers: dict[int, list[tuple[str, int]]] = {}
    for index, item_text, line in columnar.leftovers:
        leftovers.setdefault(index, []).append((item_text, line - 1))
    rows = _SlowRows()  # one set of frames for the group's odd messages, not one per file that has any
    for index, texts in leftovers.items():
        _parse_messages(texts, files[index][1], index, one_patient_per_message, slow[index], rows)
    orgs = [org for _, _, org in files]
    tables = _columnar_frames(columnar, [rel for _, rel, _ in files], orgs)
    counts = dict(columnar.messages.group_by("file").len().iter_rows())
    extra = rows.frames(orgs)
    slow_counts = dict(extra[MESSAGE_TABLE].group_by("_file").len().iter_rows())
    out = []
    for index, parsed in enumerate(slow):
        landed = counts.get(index, 0) + slow_counts.get(index, 0)
        out.append(Parsed(rows_in=counts.get(index, 0) + parsed.rows_in, quarantined=parsed.quarantined,
                          rows_out=landed))  # fmt: skip
    for table, frame in extra.items():
        if frame.height:
            tables[table] = pl.concat([tables[table], frame.select(tables[table].columns)])
    return ParsedGroup(out, tables)


def _columnar_frames(result: hl7_columnar.ColumnarResult, rels: list[str], orgs: list[str]) -> dict[str, pl.DataFrame]:
    """Raw frames (`_file` = index of the file) from the columnar extraction: lineage added, payload as text."""
    spec = hl7.field_spec()
    paths = pl.DataFrame({
        "file": pl.Series(range(len(rels)), dtype=pl.Int64), "_rel": pl.Series(rels, dtype=pl.String),
        "_org_code": pl.Series(orgs, dtype=pl.String),
    })  # fmt: skip
    messages = result.messages.join(paths, on="file", how="left").with_columns(
        hl7_columnar.hl7_time("message_time").alias("_source_updated_at"),
        (pl.col("_rel") + "#" + pl.col("control_id")).alias("_origin"),
    )
    keys = messages.select("group", "control_id", "_org_code", "_source_updated_at", "_origin")
    lineage = [pl.lit(SOURCE_SYSTEM).alias("_source_system"), pl.lit(False).alias("_deleted")]
    message_frame = messages.with_columns(pl.col("control_id").alias("_source_key"), *lineage).select(
        pl.col("file").alias("_file"), *spec["message"], "message_text", *LINEAGE_COLUMNS
    )
    orders = result.orders.join(keys, on="group", how="left").with_columns(
        pl.col("order_index").cast(pl.String),
        (pl.col("control_id") + ":" + pl.col("order_index").cast(pl.String)).alias("_source_key"),
        *lineage,
    )
    order_frame = orders.select(pl.col("file").alias("_file"), "control_id", "order_index", *spec["order"],
                                *LINEAGE_COLUMNS)  # fmt: skip
    results = result.results.join(keys, on="group", how="left").with_columns(
        pl.col("order_index").cast(pl.String),
        pl.col("result_index").cast(pl.String),
        (pl.col("control_id") + ":" + pl.col("order_index").cast(pl.String) + ":"
         + pl.col("result_index").cast(pl.String)).alias("_source_key"),
        *lineage,
    )  # fmt: skip
    result_frame = results.select(
        pl.col("file").alias("_file"), "control_id", "order_index", "result_index", *spec["result"], *LINEAGE_COLUMNS
    )
    return {MESSAGE_TABLE: message_frame, ORDER_TABLE: order_frame, RESULT_TABLE: result_frame}


def _parse_messages(
    texts: list[tuple[str, int]], rel: str, file: int, one_patient_per_message: bool, parsed: Parsed, rows: _SlowRows
) -> None:
    """The per-message path over texts of one file (text, lines before it; `file` its index): exact problems for
    bad messages (counted and quarantined in `parsed`), exact values for odd ones (rows added to `rows`)."""
    items = ((item, offset) for text, offset in texts for item in hl7.split_messages(text, one_patient_per_message))
    for item, line_offset in items:
        parsed.rows_in += 1
        line = item.line + line_offset
        if isinstance(item, hl7.Orphan):
            reason = f"segments from line {line} have no MSH header (message lost its MSH)"
            parsed.quarantined.append(QuarantineRecord(f"{rel}#line {line}", "hl7_missing_msh", reason,
                                                       item.text.encode("utf-8")))  # fmt: skip
            continue
        issue = hl7.problem(item)
        control = item.control_id
        if issue:
            origin = f"{rel}#{control}" if control else f"{rel}#line {line}"
            parsed.quarantined.append(QuarantineRecord(origin, issue[0], issue[1], item.text.encode("utf-8")))
            continue
        assert control is not None
        row, order_rows, result_rows = hl7.extract(item)
        row["message_text"] = item.text
        updated = hl7.hl7_time(row["message_time"])
        origin = f"{rel}#{control}"
        rows.messages.add(row, control, updated, origin, file)
        for index, order in enumerate(order_rows, start=1):
            order["control_id"], order["order_index"] = control, str(index)
            rows.orders.add(order, f"{control}:{index}", updated, origin, file)
        for index, result in enumerate(result_rows, start=1):
            result["control_id"], result["order_index"] = control, str(result.pop("obr_index"))
            result["result_index"] = str(index)
            rows.results.add(result, f"{control}:{result['order_index']}:{index}", updated, origin, file)


def parse_text_per_message(text: str, rel: str, org_code: str, one_patient_per_message: bool = True) -> Parsed:
    """The whole file through the per-message path (the columnar path's reference)."""
    parsed, rows = Parsed(), _SlowRows()
    _parse_messages([(text, 0)], rel, 0, one_patient_per_message, parsed, rows)
    parsed.tables = {table: frame.drop("_file") for table, frame in rows.frames([org_code]).items()}
    return parsed


def make_kind(source: SourceConfig) -> LisFiles:
    return LisFiles(one_patient_per_message=bool(source.get("one_patient_per_message", True)))
