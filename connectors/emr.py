"""EMR connector: WS/T 500 CDA documents and FHIR R4 document bundles into raw.emr_document / emr_section /
emr_fhir_resource, one document or bundle per origin.

Header fields and sections come out by the paths in `emr_mapping.yaml`, the same document columns for CDA and
FHIR so dbt treats both alike; the whole document text is kept for audit. A document that is not well-formed XML
or a bundle that fhir.resources rejects is quarantined whole with the validation error; content defects land.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from connectors.drop import Parsed, frames_by_file
from connectors.ledger import QuarantineRecord
from hutong.config import SourceConfig

SOURCE_KIND, SOURCE_SYSTEM = "emr", "EMR"
DOCUMENT_TABLE, SECTION_TABLE, RESOURCE_TABLE = "emr_document", "emr_section", "emr_fhir_resource"
MAPPING_FILE = Path(__file__).with_name("emr_mapping.yaml")
NS = {"h": "urn:hl7-org:v3"}
_TAG = re.compile(r"<[^>]+>")
_FILTER = re.compile(r"^(\w+)\[(?:(\d+)|(\w+)(\^?=)([^\]]*))\]$")


class _Unreadable(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


@cache
def mapping() -> dict[str, Any]:
    return yaml.safe_load(MAPPING_FILE.read_text(encoding="utf-8"))


def document_columns() -> list[str]:
    return [*mapping()["cda"]["document"], "diagnosis_codes", "format", "document_text"]


def section_columns() -> list[str]:
    return ["document_id", "ordinal", *mapping()["cda"]["section"], "entry_codes"]


RESOURCE_COLUMNS = ["document_id", "resource_type", "resource_id", "resource_json"]


# -- CDA ---------------------------------------------------------------------------------------------
def _cda_value(element: ET.Element, path: str) -> str | None:
    """`path[@attr]` below `element`: the attribute, or the element's whole text; None when absent or empty."""
    attribute = None
    head, _, tail = path.rpartition("@")
    if head and re.fullmatch(r"[A-Za-z]+", tail):
        path, attribute = head, tail
    found = element.find(path, NS) if path else element
    if found is None:
        return None
    value = found.get(attribute) if attribute else "".join(found.itertext()).strip()
    return value.strip() if value and value.strip() else None


def _codes(elements: Iterable[ET.Element]) -> str | None:
    codes = [f"{e.get('code', '')}|{e.get('codeSystemName') or e.get('codeSystem', '')}|{e.get('displayName', '')}"
             for e in elements if e.get("code")]  # fmt: skip
    return ";".join(codes) or None


def _cda(text: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    spec = mapping()["cda"]
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise _Unreadable("cda_unparseable", f"not well-formed XML: {exc}") from exc
    if root.tag != "{urn:hl7-org:v3}ClinicalDocument":
        raise _Unreadable("cda_unparseable", f"root element is {root.tag}, not an HL7 v3 ClinicalDocument")
    document = {column: _cda_value(root, path) for column, path in spec["document"].items()}
    sections = []
    all_codes: list[ET.Element] = []
    for ordinal, section in enumerate(root.findall(spec["sections"], NS), start=1):
        codes = section.findall(spec["entry_codes"], NS)
        all_codes += codes
        row = {column: _cda_value(section, path) for column, path in spec["section"].items()}
        sections.append(row | {"ordinal": str(ordinal), "entry_codes": _codes(codes)})
    document |= {"diagnosis_codes": _codes(all_codes), "format": "cda"}
    return document, sections


# -- FHIR --------------------------------------------------------------------------------------------
def _walk(node: Any, steps: list[str]) -> Any:
    """Follow `a.b[0].c[system=x]` steps through JSON; lists without an index take their first match."""
    for step in steps:
        if node is None:
            return None
        match = _FILTER.match(step)
        name = match.group(1) if match else step
        node = node.get(name) if isinstance(node, dict) else None
        if match and isinstance(node, list):
            index, field, op, wanted = match.group(2), match.group(3), match.group(4), match.group(5)
            if index is not None:
                node = node[int(index)] if int(index) < len(node) else None
            else:
                hits = [
                    n
                    for n in node
                    if isinstance(n, dict)
                    and (str(n.get(field, "")).startswith(wanted) if op == "^=" else str(n.get(field, "")) == wanted)
                ]
                node = hits[0] if hits else None  # fmt: skip
        elif isinstance(node, list):
            node = node[0] if node else None
    return node


def _steps(path: str) -> list[str]:
    """Split a FHIR path on the dots outside filters (filter values such as OIDs contain dots)."""
    return re.findall(r"[^.\[]+(?:\[[^\]]*\])?", path)


def _fhir_value(resources: dict[str, dict[str, Any]], path: str) -> Any:
    kind, *rest = _steps(path)
    return _walk(resources.get(kind), rest) if rest else resources.get(kind)


def _fhir(text: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    from fhir.resources.R4B.bundle import Bundle

    spec = mapping()["fhir"]
    try:
        Bundle.model_validate_json(text)
        bundle = json.loads(text)
    except (ValidationError, ValueError) as exc:
        first = str(exc).strip().splitlines()
        reason = "; ".join(first[:4]) if first else type(exc).__name__
        raise _Unreadable("fhir_invalid", f"not a valid FHIR R4 Bundle: {reason}") from exc
    entries = [e.get("resource") or {} for e in bundle.get("entry") or []]
    resources: dict[str, dict[str, Any]] = {"Bundle": bundle}
    for resource in entries:
        resources.setdefault(str(resource.get("resourceType")), resource)
    document = {column: _text(_fhir_value(resources, path)) for column, path in spec["document"].items()}
    sections = []
    owner, _, key = spec["sections"].partition(".")
    for ordinal, section in enumerate((resources.get(owner) or {}).get(key) or [], start=1):
        row = {column: _text(_walk(section, _steps(path))) for column, path in spec["section"].items()}
        if row.get("section_text"):
            row["section_text"] = _TAG.sub("", row["section_text"]).strip()
        sections.append(row | {"ordinal": str(ordinal)})
    codings = [c for r in entries if r.get("resourceType") == "Condition" for c in (r.get("code") or {}).get(
        "coding") or []]  # fmt: skip
    document["diagnosis_codes"] = ";".join(f"{c.get('code', '')}|{c.get('system', '')}|{c.get('display', '')}"
                                           for c in codings if c.get("code")) or None  # fmt: skip
    document["format"] = "fhir"
    rows = [{"resource_type": r.get("resourceType"), "resource_id": r.get("id"),
             "resource_json": json.dumps(r, ensure_ascii=False)} for r in entries]  # fmt: skip
    return document, sections, rows


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    text = str(value).strip()
    return text or None


def _timestamp(value: str | None) -> datetime | None:
    if not value:
        return None
    digits = re.sub(r"\D", "", value)
    for width, fmt in ((14, "%Y%m%d%H%M%S"), (12, "%Y%m%d%H%M"), (8, "%Y%m%d")):
        if len(digits) >= width:
            try:
                return datetime.strptime(digits[:width], fmt)
            except ValueError:
                return None
    return None


@dataclass
class EmrFiles:
    """CDA XML (`*.xml`) and FHIR bundles (`*.json`) in an institution's EMR drop folder, whatever its format."""

    kind: str = SOURCE_KIND
    source_system: str = SOURCE_SYSTEM
    entity: str = DOCUMENT_TABLE

    def files(self, folder: Path) -> Iterable[Path]:
        for path in folder.rglob("*"):
            if path.suffix.lower() in (".xml", ".json") and path.is_file():
                yield path

    def parse(self, path: Path, rel: str, data: bytes, org_code: str) -> Parsed:
        return self.parse_many([(path, rel, data)], org_code)[0]

    def parse_many(self, files: list[tuple[Path, str, bytes]], org_code: str) -> list[Parsed]:
        """Read a group of documents; each table's rows are built once and split back per file."""
        out: list[Parsed] = []
        rows: dict[str, list[dict[str, Any]]] = {DOCUMENT_TABLE: [], SECTION_TABLE: [], RESOURCE_TABLE: []}
        for index, (path, rel, data) in enumerate(files):
            parsed = Parsed(rows_in=1)
            out.append(parsed)
            try:
                text = data.decode("utf-8-sig")
            except UnicodeDecodeError as exc:
                parsed.quarantined.append(QuarantineRecord(rel, "emr_undecodable", f"not UTF-8: {exc}", data))
                continue
            try:
                if path.suffix.lower() == ".json":
                    document, sections, resources = _fhir(text)
                else:
                    (document, sections), resources = _cda(text), []
            except _Unreadable as exc:
                parsed.quarantined.append(QuarantineRecord(rel, exc.code, exc.reason, data))
                continue
            doc_id = document.get("document_id") or rel
            updated = _timestamp(document.get("effective_time"))
            lineage = {"_file": index, "_origin": rel, "_source_updated_at": updated}
            rows[DOCUMENT_TABLE].append(document | {"document_text": text, "_source_key": doc_id} | lineage)
            for section in sections:
                key = f"{doc_id}:{section['ordinal']}"
                rows[SECTION_TABLE].append(section | {"document_id": doc_id, "_source_key": key} | lineage)
            for resource in resources:
                key = f"{doc_id}:{resource['resource_type']}/{resource['resource_id']}"
                rows[RESOURCE_TABLE].append(resource | {"document_id": doc_id, "_source_key": key} | lineage)
        for table, columns in ((DOCUMENT_TABLE, document_columns()), (SECTION_TABLE, section_columns()),
                               (RESOURCE_TABLE, RESOURCE_COLUMNS)):  # fmt: skip
            for parsed, frame in zip(out, frames_by_file(rows[table], columns, len(files), org_code, SOURCE_SYSTEM),
                                     strict=True):  # fmt: skip
                parsed.tables[table] = frame
        return out


def make_kind(source: SourceConfig) -> EmrFiles:
    return EmrFiles()
