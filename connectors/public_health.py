"""Public-health connector: 基本公共卫生 CSV and Excel exports in each primary-care institution's front-end folder.

Files are weekly exports `<数据集>_<YYYYMMDD>[_n].csv|xlsx` (health records, hypertension and diabetes follow-ups,
vaccinations, 65+ check-ups). What is accepted is the institution's contract (`public_health_contract.yaml`, WS 365
data sets, WS 363 elements; a source may name its own with `contract:`): a file whose name matches no data set, whose
format the data set does not allow, or which lacks a required header is rejected whole. CSV text is UTF-8 (BOM
allowed) or GB18030/GBK; the detected encoding lands with every row (`source_encoding`). Chinese headers are mapped
to the standard columns of the contract; unknown headers land as JSON in `extra_columns`.

Each record becomes one row of its data set's raw table with source key `<dataset>:<record id>` and origin
`<file>#<line>` (CSV, the record's first physical line, header = line 1) or `<file>!<sheet>#<row>` (Excel). A CSV
line that cannot be a record (wrong number of fields, unclosed quote, bytes that are not text in the file's
encoding) or a record without its id is quarantined with its original bytes; content defects (a blank date, an
odd blood pressure) land as received for the quality rules. A file's data day is the end of the reporting period
(a week by default) holding its latest service date, so a week delivered days late is late against the cut-off
(history exports, e.g. the records on hand when an institution joins, are due by their export date; see the contract).
"""

from __future__ import annotations

import calendar
import codecs
import csv
import fnmatch
import io
import json
import re
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from connectors.drop import Parsed
from connectors.ledger import QuarantineRecord, SourceError
from hutong.config import SourceConfig

SOURCE_KIND = "public_health"
SOURCE_SYSTEM = "PH"
CONTRACT = Path(__file__).with_name("public_health_contract.yaml")
FORMATS = ("csv", "xlsx")
PERIODS = ("day", "week", "month")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FILE_COLUMNS = ("extra_columns", "source_format", "source_encoding")  # payload the connector adds to every row
ZIP_MAGIC = b"PK\x03\x04"
_SPACES = re.compile(r"[\s\ufeff]+")
_DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y%m%d")


class Rejected(Exception):
    """The whole file is refused: (error code, reason naming what the contract expects)."""

    def __init__(self, code: str, reason: str, table: str | None = None) -> None:
        super().__init__(reason)
        self.code, self.reason, self.table = code, reason, table  # table: the data set's, once the name told it


def normalise_header(text: str) -> str:
    """Header text as compared with the contract: NFKC (full-width brackets etc.), no spaces or BOM."""
    return _SPACES.sub("", unicodedata.normalize("NFKC", text))


@dataclass(frozen=True)
class Dataset:
    """One data set of the contract: which files carry it, their columns and where they land."""

    name: str
    title: str
    file_form: str
    file_name: re.Pattern[str]
    formats: tuple[str, ...]
    raw_table: str
    key: str
    service_date: str
    required: tuple[str, ...]
    columns: tuple[str, ...]
    headers: dict[str, str]  # normalised header -> standard column
    labels: dict[str, str]  # standard column -> the header the contract names first

    def describe(self, columns: Iterable[str]) -> str:
        """Columns as `header (column)` for messages."""
        return ", ".join(f"{self.labels[c]} ({c})" for c in columns)


@dataclass(frozen=True)
class Contract:
    """An institution's public-health file contract (see public_health_contract.yaml)."""

    name: str
    version: str
    standard: str
    datasets: dict[str, Dataset]
    ignore: tuple[str, ...]
    encodings: tuple[str, ...]
    delimiter: str
    max_record_lines: int
    header_search_rows: int
    period: str
    week_ends: int  # 0 = Monday .. 6 = Sunday
    history_span_days: int
    history_stale_days: int

    @property
    def label(self) -> str:
        return f"{self.name} v{self.version} ({self.standard})"

    def ignored(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.ignore)

    def classify(self, name: str) -> tuple[Dataset, str, date]:
        """The data set, format and export day of a file name; raises Rejected when the contract does not allow it."""
        for dataset in self.datasets.values():
            match = dataset.file_name.match(name)
            if match is None:
                continue
            digits = match.group("day")
            try:
                day = datetime.strptime(digits, "%Y%m%d").date()
            except ValueError:
                raise Rejected("file_name_invalid", f"{name}: {digits} is not a valid YYYYMMDD export date") from None
            ext = match.group("ext").lower()
            if ext not in dataset.formats:
                allowed = " or ".join(f".{f}" for f in dataset.formats)
                reason = f"{name}: {dataset.title} files must be {allowed} under {self.label}, got .{ext}"
                raise Rejected("format_invalid", reason, dataset.raw_table)
            return dataset, ext, day
        forms = "; ".join(f"{d.file_form}.{'|'.join(d.formats)}" for d in self.datasets.values())
        raise Rejected("file_name_invalid", f"{name} matches no data set of {self.label}; expected one of: {forms}")

    def data_day(self, dates: tuple[date, date] | None, exported: date) -> date:
        """The day a file's data belong to: the end of the period of its latest service date (`dates` = median,
        latest). A history export (median more than `history_span_days` before latest) whose latest record is older
        than `history_stale_days` at export belongs to its export date, as does a file without a service date."""
        if dates is None:
            return exported
        median, latest = dates
        history = (latest - median).days > self.history_span_days
        if history and (exported - latest).days > self.history_stale_days:
            return exported
        return self.period_end(latest)

    def period_end(self, day: date) -> date:
        """The last day of the reporting period holding `day` (data of the period are due by its cut-off)."""
        if self.period == "week":
            return day + timedelta(days=(self.week_ends - day.weekday()) % 7)
        if self.period == "month":
            return day.replace(day=calendar.monthrange(day.year, day.month)[1])
        return day


def _dataset(name: str, spec: dict[str, Any]) -> Dataset:
    """One data set from its contract entry (raises KeyError/ValueError on a bad entry)."""
    columns: dict[str, Any] = spec["columns"]
    headers: dict[str, str] = {}
    labels: dict[str, str] = {}
    for column, column_spec in columns.items():
        if not re.fullmatch(r"[a-z][a-z0-9_]*", column) or column in FILE_COLUMNS:
            raise ValueError(f"{name}: column name {column!r} must be snake_case and not one of {FILE_COLUMNS}")
        aliases = [str(h) for h in column_spec["headers"]]
        labels[column] = aliases[0]
        for alias in aliases:
            key = normalise_header(alias)
            if headers.get(key, column) != column:
                raise ValueError(f"{name}: header {alias} names both {headers[key]} and {column}")
            headers[key] = column
    key, service_date = str(spec["key"]), str(spec["service_date"])
    required = tuple(dict.fromkeys([key, *spec.get("required", [])]))
    unknown = [c for c in (*required, service_date) if c not in columns]
    formats = tuple(str(f).lower() for f in spec["formats"])
    pattern = re.compile(str(spec["file_name"]))
    if unknown or not set(formats) <= set(FORMATS) or not {"day", "ext"} <= set(pattern.groupindex):
        raise ValueError(f"{name}: unknown columns {unknown}, formats {formats} (allowed {FORMATS}) or file_name "
                         "without groups `day` and `ext`")  # fmt: skip
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(spec["raw_table"])):
        raise ValueError(f"{name}: raw table {spec['raw_table']!r} must be lower_snake_case")
    return Dataset(name, str(spec.get("title", name)), str(spec.get("file_form", pattern.pattern)), pattern, formats,
                   str(spec["raw_table"]), key, service_date, required, tuple(columns), headers, labels)  # fmt: skip


@cache
def load_contract(path: str) -> Contract:
    """Read and check a contract file; a missing or inconsistent contract makes the source unreadable."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        files, delivery = raw.get("files", {}), raw.get("delivery", {})
        standard = raw["standard"]
        encodings = tuple(str(e).lower() for e in files.get("encodings", ["utf-8", "gb18030"]))
        for encoding in encodings:
            codecs.lookup(encoding)
        period = str(delivery.get("period", "week"))
        if period not in PERIODS:
            raise ValueError(f"delivery period {period!r} is not one of {PERIODS}")
        return Contract(
            name=str(raw["contract"]),
            version=str(raw["version"]),
            standard=f"{standard['name']}" if isinstance(standard, dict) else str(standard),
            datasets={str(n): _dataset(str(n), s) for n, s in raw["datasets"].items()},
            ignore=tuple(str(p) for p in files.get("ignore", [])),
            encodings=encodings,
            delimiter=str(files.get("delimiter", ",")),
            max_record_lines=int(files.get("max_record_lines", 10)),
            header_search_rows=int(files.get("header_search_rows", 5)),
            period=period,
            week_ends=WEEKDAYS.index(str(delivery.get("week_ends", "sunday")).lower()),
            history_span_days=int(delivery.get("history_span_days", 92)),
            history_stale_days=int(delivery.get("history_stale_days", 7)),
        )
    except (OSError, yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError, LookupError, re.error) as exc:
        raise SourceError(f"public-health contract {path} cannot be used: {type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class Layout:
    """Where a file's header puts each standard column (and the headers the contract does not know)."""

    width: int
    positions: dict[str, int]
    extras: tuple[tuple[int, str], ...]


def layout(dataset: Dataset, cells: list[str | None]) -> Layout:
    """Map a header row onto the data set's columns; raises Rejected when a header is ambiguous."""
    positions: dict[str, int] = {}
    extras: list[tuple[int, str]] = []
    for index, cell in enumerate(cells):
        text = "" if cell is None else str(cell)
        column = dataset.headers.get(normalise_header(text))
        if column is None:
            extras.append((index, text.strip() or f"#{index + 1}"))
        elif column in positions:
            raise Rejected("headers_invalid", f"headers {cells[positions[column]]} and {text} both map to {column} "
                                              f"of {dataset.title}")  # fmt: skip
        else:
            positions[column] = index
    return Layout(len(cells), positions, tuple(extras))


def find_header(dataset: Dataset, candidates: Iterable[tuple[int, list[str | None]]], label: str) -> tuple[int, Layout]:
    """The first candidate row (row index, cells) that carries every required header; else Rejected."""
    first: list[str | None] | None = None
    ambiguous: Rejected | None = None
    for index, cells in candidates:
        first = cells if first is None else first
        try:
            found = layout(dataset, cells)
        except Rejected as exc:
            ambiguous = ambiguous or exc
            continue
        if all(c in found.positions for c in dataset.required):
            return index, found
    if ambiguous is not None:
        raise ambiguous
    if first is None:
        raise Rejected("headers_invalid", f"no header row: the file is empty; {label} expects "
                                          f"{dataset.describe(dataset.required)}")  # fmt: skip
    missing = [c for c in dataset.required if c not in layout(dataset, first).positions]
    seen = ", ".join("" if c is None else str(c) for c in first)
    raise Rejected("headers_invalid", f"{dataset.title} lacks required header(s) {dataset.describe(missing)} "
                                      f"under {label}; header found: {seen}")  # fmt: skip


@dataclass
class Records:
    """Records read from one file: cells (one list per record, header width), origins, and what was refused."""

    fmt: str
    encoding: str | None
    layout: Layout
    rows: list[list[Any]] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    quarantined: list[QuarantineRecord] = field(default_factory=list)


# -- CSV ---------------------------------------------------------------------------------------------------------
def decode_lines(data: bytes, encodings: tuple[str, ...]) -> tuple[str, list[str | None]]:
    """The file's encoding and its physical lines (split on LF, CR kept); None for a line no encoding decodes.

    The first encoding that decodes the whole file wins (UTF-8 with a BOM is reported as utf-8-sig); when none does,
    the one that decodes the most lines, and the lines it cannot decode are None. A file of which most lines decode
    in no encoding is rejected.
    """
    bom = data.startswith(codecs.BOM_UTF8)
    for encoding in encodings:
        codec = "utf-8-sig" if bom and codecs.lookup(encoding).name == "utf-8" else encoding
        try:
            return codec, data.decode(codec).split("\n")
        except UnicodeDecodeError:
            continue
    raw = data.split(b"\n")
    best: tuple[int, str, list[str | None]] | None = None
    for encoding in encodings:
        codec = "utf-8-sig" if bom and codecs.lookup(encoding).name == "utf-8" else encoding
        lines = [_decode(line, codec if n == 0 else encoding) for n, line in enumerate(raw)]
        failures = lines.count(None)
        if best is None or failures < best[0]:
            best = (failures, codec, lines)
    if best is None or best[0] * 2 > len(raw):
        raise Rejected("encoding_invalid", f"most lines are text in none of the contract's encodings "
                                           f"({', '.join(encodings)})")  # fmt: skip
    return best[1], best[2]


def _decode(line: bytes, encoding: str) -> str | None:
    try:
        return line.decode(encoding)
    except UnicodeDecodeError:
        return None


def _strip_cr(text: str) -> str:
    return text[:-1] if text.endswith("\r") else text


def _quoted(lines: list[str | None], start: int, width: int, contract: Contract) -> tuple[list[str] | None, int, str]:
    """A record whose first line holds a quote: (fields, physical lines used, problem).

    A quoted field may run over following lines (up to `max_record_lines`); the record is accepted only when it
    closes into exactly one record of the header's width. Otherwise the first line alone is refused.
    """
    problem = ""
    for used in range(1, contract.max_record_lines + 1):
        chunk = lines[start : start + used]
        if len(chunk) < used or chunk[-1] is None:
            break
        parts = [f"{line}\n" for line in chunk[:-1]] + [_strip_cr(chunk[-1])]  # type: ignore[list-item]
        try:
            records = list(csv.reader(parts, delimiter=contract.delimiter, strict=True))
        except csv.Error as exc:
            problem = problem or ("quoted field is not closed" if "unexpected end" in str(exc) else f"csv: {exc}")
            continue
        if used == 1 and len(records) == 1:
            if len(records[0]) == width:
                return records[0], 1, ""
            return None, 1, f"{len(records[0])} fields where the header has {width}"
        if len(records) == 1 and len(records[0]) == width:
            return records[0], used, ""
        break
    return None, 1, problem or "quoted field is not closed"


def read_csv(data: bytes, rel: str, dataset: Dataset, contract: Contract) -> Records:
    """Records of a CSV file; lines that cannot be records are quarantined with their bytes and line number."""
    if data.startswith(ZIP_MAGIC) or b"\x00" in data[:4096]:
        raise Rejected("format_invalid", f"{rel} is binary (a zip archive or NUL bytes, e.g. UTF-16), not "
                                         f"{dataset.title} CSV text in {' or '.join(contract.encodings)}")  # fmt: skip
    encoding, lines = decode_lines(data, contract.encodings)
    delimiter = contract.delimiter

    def candidates() -> Iterator[tuple[int, list[str | None]]]:
        seen = 0
        for index, line in enumerate(lines):
            if line is None or not line.strip():
                continue
            seen += 1
            if seen > contract.header_search_rows:
                return
            yield index, next(csv.reader([_strip_cr(line)], delimiter=delimiter), [])

    header_at, found = find_header(dataset, candidates(), contract.label)
    out = Records("csv", encoding, found)
    raw: list[bytes] = []  # the file's physical lines as bytes, split when a first line is refused

    def refuse(index: int, used: int, code: str, message: str) -> None:
        if not raw:
            raw.extend(data.split(b"\n"))
        original = b"\n".join(raw[index : index + used])
        original = original[:-1] if original.endswith(b"\r") else original
        if not message:  # a line that is not text in the file's encoding
            message = _bad_bytes(original, encoding)
        out.quarantined.append(QuarantineRecord(f"{rel}#{index + 1}", code, f"line {index + 1}: {message}", original))

    width, key_at = found.width, found.positions[dataset.key]
    index, total = header_at + 1, len(lines)
    while index < total:
        line = lines[index]
        if line is None:
            refuse(index, 1, "csv_row_malformed", "")
            index += 1
            continue
        if '"' in line:
            fields, used, problem = _quoted(lines, index, width, contract)
        else:
            text = _strip_cr(line)
            if not text.strip():
                index += 1
                continue
            fields, used = text.split(delimiter), 1
            problem = "" if len(fields) == width else f"{len(fields)} fields where the header has {width}"
        if problem or fields is None:
            refuse(index, 1, "csv_row_malformed", problem)
        elif not fields[key_at].strip():
            refuse(index, used, "record_key_missing", f"no {dataset.describe([dataset.key])}")
        else:
            out.rows.append(fields)
            out.origins.append(f"{rel}#{index + 1}")
        index += used
    return out


def _bad_bytes(line: bytes, encoding: str) -> str:
    """Why a line of the file is not text in the file's encoding, for the quarantine message."""
    try:
        line.decode(encoding)
    except UnicodeDecodeError as exc:
        return f"not {encoding} text: byte {line[exc.start : exc.start + 1].hex()} at offset {exc.start} ({exc.reason})"
    return f"not {encoding} text"


# -- Excel -------------------------------------------------------------------------------------------------------
def cell_text(value: Any) -> str | None:
    """An Excel cell as text: empty -> None, whole numbers without `.0`, dates as ISO."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    return str(value)


def read_xlsx(data: bytes, rel: str, dataset: Dataset, contract: Contract) -> Records:
    """Records of the first worksheet that carries the data set's header; empty rows are skipped."""
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if not data.startswith(ZIP_MAGIC):
        raise Rejected("format_invalid", f"{rel} is not an Excel .xlsx workbook (no zip signature)")
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, TypeError, OSError) as exc:
        reason = f"{rel} is not a readable .xlsx workbook: {type(exc).__name__}: {exc}"
        raise Rejected("format_invalid", reason) from exc
    try:
        first: Rejected | None = None
        for sheet in book.worksheets:
            sheet.reset_dimensions()  # exporters often write a wrong <dimension>; read every cell there is
            rows = _sheet_rows(sheet)
            head: list[tuple[int, list[str | None]]] = []
            for n, cells in rows:
                while cells and cells[-1] is None:
                    cells.pop()
                if cells:
                    head.append((n, cells))
                if len(head) >= contract.header_search_rows:
                    break
            try:
                header_row, found = find_header(dataset, head, contract.label)
            except Rejected as exc:
                first = first or exc
                continue
            out = Records("xlsx", None, found)
            for n, cells in head:
                if n > header_row:
                    _xlsx_row(out, dataset, f"{rel}!{sheet.title}", n, cells)
            for n, cells in rows:
                _xlsx_row(out, dataset, f"{rel}!{sheet.title}", n, cells)
            return out
        raise first or Rejected("headers_invalid", f"{rel} has no worksheet")
    finally:
        book.close()


def _sheet_rows(sheet: Any) -> Iterator[tuple[int, list[str | None]]]:
    """(row number, cells as text) of every row of a worksheet, from row 1."""
    for n, values in enumerate(sheet.iter_rows(values_only=True), start=1):
        yield n, [cell_text(v) for v in values]


def _xlsx_row(out: Records, dataset: Dataset, where: str, n: int, cells: list[str | None]) -> None:
    """Take one worksheet row as a record, or quarantine it (values outside the header, no record id)."""
    if not any(c is not None for c in cells):
        return
    width, key_at = out.layout.width, out.layout.positions[dataset.key]
    code, problem = "", ""
    if any(c is not None for c in cells[width:]):
        code, problem = "xlsx_row_malformed", f"values beyond the header's {width} columns"
    elif key_at >= len(cells) or not (cells[key_at] or "").strip():
        code, problem = "record_key_missing", f"no {dataset.describe([dataset.key])}"
    if problem:
        original = json.dumps({"row": n, "cells": cells}, ensure_ascii=False).encode()
        out.quarantined.append(QuarantineRecord(f"{where}#{n}", code, f"row {n}: {problem}", original))
        return
    out.rows.append((cells + [None] * width)[:width])
    out.origins.append(f"{where}#{n}")


# -- rows to raw -------------------------------------------------------------------------------------------------
def frame(records: Records, dataset: Dataset, org_code: str) -> pl.DataFrame:
    """The raw batch of a file's records: standard columns as text (empty -> NULL), file columns, lineage."""
    found = records.layout
    count = len(records.rows)
    by_position = list(zip(*records.rows, strict=True)) if count else [()] * found.width
    data: dict[str, pl.Series] = {}
    for column in dataset.columns:
        at = found.positions.get(column)
        data[column] = pl.Series(column, by_position[at] if at is not None else [None] * count, dtype=pl.String)
    extra: list[str | None] = [None] * count
    if found.extras:
        for i, row in enumerate(records.rows):
            values = {name: row[at] for at, name in found.extras if row[at] not in (None, "")}
            extra[i] = json.dumps(values, ensure_ascii=False) if values else None
    data["extra_columns"] = pl.Series("extra_columns", extra, dtype=pl.String)
    empty_is_null = [pl.when(pl.col(c) != "").then(pl.col(c)).alias(c) for c in dataset.columns]
    return (
        pl.DataFrame(data)
        .with_columns(empty_is_null)
        .with_columns(
            pl.lit(records.fmt).alias("source_format"),
            pl.lit(records.encoding, dtype=pl.String).alias("source_encoding"),
            pl.lit(org_code).alias("_org_code"),
            pl.lit(SOURCE_SYSTEM).alias("_source_system"),
            (pl.lit(f"{dataset.name}:") + pl.col(dataset.key).str.strip_chars()).alias("_source_key"),
            pl.lit(None, dtype=pl.Datetime("us")).alias("_source_updated_at"),
            pl.lit(False).alias("_deleted"),
            pl.Series("_origin", records.origins, dtype=pl.String),
        )
    )


def service_dates(rows: pl.DataFrame, column: str, not_after: date) -> tuple[date, date] | None:
    """The median and latest parseable service dates of a file (dates after its export date are not trusted)."""
    text = rows[column].str.strip_chars()
    parsed = pl.select(
        pl.coalesce(
            [text.str.slice(0, 10).str.strptime(pl.Date, f, strict=False) for f in _DATE_FORMATS[:3]]
            + [text.str.slice(0, 8).str.strptime(pl.Date, _DATE_FORMATS[3], strict=False)]
        )
    ).to_series()
    parsed = parsed.filter(parsed <= not_after).drop_nulls().sort()
    if parsed.is_empty():
        return None
    return parsed[len(parsed) // 2], parsed[-1]


# -- the file kind -----------------------------------------------------------------------------------------------
@dataclass
class PublicHealthFiles:
    """Public-health exports in an institution's front-end folder, read under its contract."""

    contract: Contract
    kind: str = SOURCE_KIND
    source_system: str = SOURCE_SYSTEM
    entity: str = "ph_health_record"

    def files(self, folder: Path) -> Iterable[Path]:
        """Every regular file (a file with a bad name must be seen to be rejected), minus the contract's ignores."""
        for path in folder.rglob("*"):
            parts = path.relative_to(folder).parts
            if path.is_file() and not any(self.contract.ignored(part) for part in parts):
                yield path

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed:
        """One export file as rows of its data set's raw table, or rejected whole."""
        try:
            dataset, fmt, exported = self.contract.classify(Path(rel).name)
        except Rejected as exc:
            return Parsed(rejected=(exc.code, exc.reason), primary=exc.table)
        try:
            records = (read_csv if fmt == "csv" else read_xlsx)(data, rel, dataset, self.contract)
        except Rejected as exc:
            return Parsed(rejected=(exc.code, exc.reason), primary=dataset.raw_table)
        rows = frame(records, dataset, org_code)
        return Parsed(
            tables={dataset.raw_table: rows},
            rows_in=rows.height + len(records.quarantined),
            quarantined=records.quarantined,
            data_day=self.contract.data_day(service_dates(rows, dataset.service_date, exported), exported),
            primary=dataset.raw_table,
        )


def contract_path(source: SourceConfig) -> Path:
    """The institution's contract (`contract:` in its source settings), else the shipped one."""
    value = source.get("contract")
    return Path(str(value)).expanduser() if value else CONTRACT


def make_kind(source: SourceConfig) -> PublicHealthFiles:
    """The public-health file reader for one institution (raises SourceError when its contract is unusable)."""
    return PublicHealthFiles(load_contract(str(contract_path(source).resolve())))
