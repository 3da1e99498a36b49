"""PACS connector: DICOM headers (pixel data never read) into raw.pacs_study, imaging reports into raw.pacs_report.

Columns are data (`pacs_mapping.yaml`: DICOM keywords and report keys). One DICOM file is one record, keyed by its
SOP Instance UID; one report is one record, keyed by its accession number. A file that is not DICOM, or a report
that is not JSON, is quarantined whole with its bytes; content defects (no patient id, odd codes) land.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from connectors.drop import Parsed, frames_by_file
from connectors.ledger import QuarantineRecord
from hutong.config import SourceConfig

SOURCE_KIND, SOURCE_SYSTEM = "pacs", "PACS"
STUDY_TABLE, REPORT_TABLE = "pacs_study", "pacs_report"
MAPPING_FILE = Path(__file__).with_name("pacs_mapping.yaml")


@cache
def mapping() -> dict[str, dict[str, str]]:
    spec = yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))
    return {"dicom": dict(spec["dicom"]), "report": dict(spec["report"])}


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value) or None
    text = str(value).strip()
    return text or None


def _dicom_time(date_value: str | None, time_value: str | None) -> datetime | None:
    if not date_value:
        return None
    try:
        return datetime.strptime(date_value[:8] + (time_value or "000000").split(".")[0].ljust(6, "0")[:6],
                                 "%Y%m%d%H%M%S")  # fmt: skip
    except ValueError:
        return None


def _report_time(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value)) if value else None
    except ValueError:
        return None


def read_dicom(data: bytes) -> dict[str, str | None]:
    """Header attributes of one DICOM file (stops before pixel data; names decoded with its character set)."""
    dataset = dcmread(io.BytesIO(data), stop_before_pixels=True)
    return {column: _text(dataset.get(keyword)) for column, keyword in mapping()["dicom"].items()}


@dataclass
class PacsFiles:
    """DICOM files (`*.dcm`) and imaging reports (`*.json`) in an institution's PACS drop folder."""

    kind: str = SOURCE_KIND
    source_system: str = SOURCE_SYSTEM
    entity: str = STUDY_TABLE

    def files(self, folder: Path) -> Iterable[Path]:
        for path in folder.rglob("*"):
            if path.suffix.lower() in (".dcm", ".json") and path.is_file():
                yield path

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed:
        return self.parse_many([(path, rel, data)], org_code)[0]

    def parse_many(self, files: list[tuple[Path, str, bytes]], org_code: str) -> list[Parsed]:
        """Read a group of files; rows of each table are built in one frame and split back per file."""
        out: list[Parsed] = []
        rows: dict[str, list[dict[str, Any]]] = {STUDY_TABLE: [], REPORT_TABLE: []}
        for index, (path, rel, data) in enumerate(files):
            is_report = path.suffix.lower() == ".json"
            parsed = Parsed(rows_in=1, primary=REPORT_TABLE if is_report else STUDY_TABLE)
            try:
                row = _report_row(rel, data) if is_report else _dicom_row(rel, data)
                row["_file"] = index
                rows[parsed.primary].append(row)  # type: ignore[index]
            except _Unreadable as exc:
                parsed.quarantined.append(QuarantineRecord(rel, exc.code, exc.reason, data))
            out.append(parsed)
        for table, columns in ((STUDY_TABLE, mapping()["dicom"]), (REPORT_TABLE, mapping()["report"])):
            frames = frames_by_file(rows[table], columns, len(files), org_code, SOURCE_SYSTEM)
            for parsed, frame in zip(out, frames, strict=True):
                if parsed.primary == table:
                    parsed.tables[table] = frame
        return out


class _Unreadable(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def _dicom_row(rel: str, data: bytes) -> dict[str, Any]:
    try:
        row: dict[str, Any] = read_dicom(data)
    except (InvalidDicomError, EOFError, ValueError, KeyError, OSError, AttributeError) as exc:
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise _Unreadable(
            "dicom_unreadable", f"not a readable DICOM file: {type(exc).__name__} {detail}".strip()
        ) from exc
    return row | {"_source_key": row["sop_instance_uid"] or row["accession_number"] or rel, "_origin": rel,
                  "_source_updated_at": _dicom_time(row["study_date"], row["study_time"])}  # fmt: skip


def _report_row(rel: str, data: bytes) -> dict[str, Any]:
    columns = mapping()["report"]
    try:
        document = json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _Unreadable("report_unreadable", f"imaging report is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise _Unreadable("report_unreadable", "imaging report is not a JSON object")
    row: dict[str, Any] = {column: _text(document.get(key)) for column, key in columns.items()}
    if isinstance(document.get(columns["abnormal"]), bool):
        row["abnormal"] = "1" if document[columns["abnormal"]] else "0"
    return row | {"_source_key": row["accession_number"] or rel, "_origin": rel,
                  "_source_updated_at": _report_time(document.get(columns["report_time"]))}  # fmt: skip


def make_kind(source: SourceConfig) -> PacsFiles:
    return PacsFiles()
