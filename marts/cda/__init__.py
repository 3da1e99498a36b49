"""CDA R2 shared documents (WS/T 500-2016 EMR, WS/T 483-2016 health record): templates are data
(`marts/cda/templates/*.yaml`), rendered by `render.py` and checked against the same template by `check.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hutong.config import ConfigError

TEMPLATES_DIR = Path(__file__).with_name("templates")
VALUE_TYPES = ("ST", "CD", "TS", "PQ", "INT", "REAL", "BL", "MO")
NS = "urn:hl7-org:v3"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
DE_SYSTEM = "2.16.156.10011.2.2.1"  # 卫生信息数据元目录 (WS 363)
LOINC = "2.16.840.1.113883.6.1"
DOC_SYSTEM = "2.16.156.10011.2.4"  # 卫生信息共享文档规范编码体系
GENDER_SYSTEM = "2.16.156.10011.2.3.3.4"  # GB/T 2261.1
ID_CARD_ROOT = "2.16.156.10011.1.3"
ORG_ROOT = "2.16.156.10011.1.5"
DOC_ID_ROOT = "2.16.156.10011.1.1"


@dataclass(frozen=True)
class EntrySpec:
    """One coded entry: an observation whose code is a WS 363 data element, with a typed value."""

    de: str
    name: str
    type: str
    column: str | None = None
    constant: str | None = None
    display_column: str | None = None
    unit_column: str | None = None
    unit: str | None = None
    code_system: str | None = None  # the value set the code must come from (checked)
    code_system_name: str | None = None
    system_column: str | None = None  # the record's own code system for the value, when it varies
    values: tuple[str, ...] = ()  # allowed codes
    pattern: str | None = None  # allowed code shape (regular expression), e.g. ICD-10
    required: bool = False


@dataclass(frozen=True)
class GroupSpec:
    """Entries that repeat once per row of a component (one lab result, one diagnosis ...), as an organizer."""

    component: str
    entries: tuple[EntrySpec, ...]
    required: bool = False
    max_rows: int = 0


@dataclass(frozen=True)
class SectionSpec:
    code: str | None  # LOINC section code (None for WS/T sections without one, such as 卫生事件)
    display: str
    title: str
    entries: tuple[EntrySpec, ...] = ()
    groups: tuple[GroupSpec, ...] = ()
    required: bool = False


@dataclass(frozen=True)
class DocumentSpec:
    name: str
    standard: str
    template_id: str
    code: str
    title: str
    patient_ids: tuple[dict[str, Any], ...]
    patient: dict[str, str]
    author: dict[str, str]
    custodian: dict[str, str]
    effective_time: str
    encounter: dict[str, str] = field(default_factory=dict)
    sections: tuple[SectionSpec, ...] = ()
    code_system: str = DOC_SYSTEM


def _entry(raw: dict[str, Any], where: str) -> EntrySpec:
    if raw.get("type") not in VALUE_TYPES:
        raise ConfigError(f"{where}: entry {raw.get('de')}: type must be one of {VALUE_TYPES}")
    if not str(raw.get("de", "")).startswith("DE"):
        raise ConfigError(f"{where}: entry code {raw.get('de')!r} is not a WS 363 data element (DExx.xx.xxx.xx)")
    return EntrySpec(
        de=str(raw["de"]),
        name=str(raw["name"]),
        type=str(raw["type"]),
        column=raw.get("column"),
        constant=None if raw.get("constant") is None else str(raw["constant"]),
        display_column=raw.get("display_column"),
        unit_column=raw.get("unit_column"),
        unit=raw.get("unit"),
        code_system=raw.get("code_system"),
        code_system_name=raw.get("code_system_name"),
        system_column=raw.get("system_column"),
        values=tuple(str(v) for v in raw.get("values") or ()),
        pattern=raw.get("pattern"),
        required=bool(raw.get("required", False)),
    )


def parse_template(raw: dict[str, Any], where: str) -> DocumentSpec:
    sections = []
    for s in raw.get("sections") or []:
        entries = tuple(_entry(e, where) for e in s.get("entries") or [])
        groups = tuple(
            GroupSpec(
                str(g["component"]),
                tuple(_entry(e, where) for e in g["entries"]),
                bool(g.get("required")),
                int(g.get("max_rows", 0)),
            )
            for g in s.get("groups") or []
        )
        if len(groups) > 1:
            raise ConfigError(f"{where}: section {s['title']}: one repeating group per section")
        sections.append(
            SectionSpec(
                s.get("code"),
                str(s.get("display", s["title"])),
                str(s["title"]),
                entries,
                groups,
                bool(s.get("required", False)),
            )
        )
    try:
        return DocumentSpec(
            name=str(raw["document"]),
            standard=str(raw["standard"]),
            template_id=str(raw["template_id"]),
            code=str(raw["code"]),
            title=str(raw["title"]),
            patient_ids=tuple(raw.get("patient_ids") or ()),
            patient=dict(raw["patient"]),
            author=dict(raw["author"]),
            custodian=dict(raw["custodian"]),
            effective_time=str(raw["effective_time"]),
            encounter=dict(raw.get("encounter") or {}),
            sections=tuple(sections),
            code_system=str(raw.get("code_system", DOC_SYSTEM)),
        )
    except KeyError as exc:
        raise ConfigError(f"{where}: missing {exc}") from exc


@cache
def template(name: str) -> DocumentSpec:
    path = TEMPLATES_DIR / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted(TEMPLATES_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown CDA template {name!r}; known: {known}")
    return parse_template(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))


def all_templates() -> list[str]:
    return [p.stem for p in sorted(TEMPLATES_DIR.glob("*.yaml"))]
