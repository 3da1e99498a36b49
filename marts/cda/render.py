"""Render one CDA R2 document from a template (WS/T 500 / WS/T 483 header, sections, coded entries) and a record."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from marts.cda import (
    DE_SYSTEM,
    DOC_ID_ROOT,
    GENDER_SYSTEM,
    ID_CARD_ROOT,
    LOINC,
    ORG_ROOT,
    DocumentSpec,
    EntrySpec,
    SectionSpec,
)

GENDER_NAMES = {"0": "未知的性别", "1": "男性", "2": "女性", "9": "未说明的性别"}


def ts(value: Any) -> str | None:
    """HL7 TS: YYYYMMDDHHMMSS for date-times, YYYYMMDD for dates."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y%m%d%H%M%S")
    if isinstance(value, date):
        return value.strftime("%Y%m%d")
    digits = "".join(ch for ch in str(value) if ch.isdigit())
    return digits[:14] if len(digits) >= 8 else None


def _number(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, float | Decimal):
        return format(value, "f").rstrip("0").rstrip(".") if "." in format(value, "f") else format(value, "f")
    try:
        float(str(value))
    except ValueError:
        return None
    return str(value).strip()


ATTR_SPECIAL = re.compile(r'[&<>"\n\r\t]')
TEXT_SPECIAL = re.compile(r"[&<>]")


def _attr(name: str, value: Any) -> str:
    if value is None or value == "":
        return ""
    text = str(value)
    return f' {name}="{text}"' if ATTR_SPECIAL.search(text) is None else f" {name}={quoteattr(text)}"


def _text(value: Any) -> str:
    if value is None or value == "":
        return ""
    text = str(value)
    return text if TEXT_SPECIAL.search(text) is None else escape(text)


def _value(spec: EntrySpec, row: dict[str, Any]) -> tuple[str, str] | None:
    """The <value> element and its narrative text, or None when the record has no value for the entry."""
    raw = spec.constant if spec.constant is not None else row.get(spec.column or "")
    if raw is None or raw == "":
        return None
    kind = spec.type
    if kind == "ST":
        return f'<value xsi:type="ST">{_text(raw)}</value>', str(raw)
    if kind == "CD":
        display = row.get(spec.display_column) if spec.display_column else None
        system = row.get(spec.system_column) if spec.system_column else spec.code_system
        attrs = (
            _attr("code", raw)
            + _attr("codeSystem", system)
            + _attr("codeSystemName", spec.code_system_name)
            + _attr("displayName", display)
        )
        return f'<value xsi:type="CD"{attrs}/>', f"{display or ''} ({raw})" if display else str(raw)
    if kind == "TS":
        stamp = ts(raw)
        return (f'<value xsi:type="TS" value="{stamp}"/>', stamp) if stamp else None
    if kind == "BL":
        flag = str(raw).lower() in ("1", "true", "t", "y", "yes", "是")
        return f'<value xsi:type="BL" value="{"true" if flag else "false"}"/>', "是" if flag else "否"
    number = _number(raw)
    if number is None:
        return None
    if kind == "PQ":
        unit = row.get(spec.unit_column) if spec.unit_column else spec.unit
        unit = unit or "1"
        return f'<value xsi:type="PQ" value="{number}"{_attr("unit", unit)}/>', f"{number} {unit}"
    if kind == "MO":
        return f'<value xsi:type="MO" value="{number}" currency="CNY"/>', f"{number} 元"
    if kind == "INT":
        return f'<value xsi:type="INT" value="{int(float(number))}"/>', str(int(float(number)))
    return f'<value xsi:type="REAL" value="{number}"/>', number


def _observation(spec: EntrySpec, row: dict[str, Any]) -> tuple[str, str] | None:
    value = _value(spec, row)
    if value is None:
        return None
    element, narrative = value
    xml = (
        f'<observation classCode="OBS" moodCode="EVN"><code code="{spec.de}" codeSystem="{DE_SYSTEM}" '
        f'codeSystemName="卫生信息数据元目录"{_attr("displayName", spec.name)}/>{element}</observation>'
    )
    return xml, f"{spec.name}：{narrative}"


def _section(spec: SectionSpec, row: dict[str, Any], components: dict[str, list[dict[str, Any]]]) -> str | None:
    entries, lines = [], []
    for e in spec.entries:
        obs = _observation(e, row)
        if obs:
            entries.append(f"<entry>{obs[0]}</entry>")
            lines.append(obs[1])
    for group in spec.groups:
        rows = components.get(group.component, [])
        for item in rows[: group.max_rows or None]:
            parts = [o for o in (_observation(e, item) for e in group.entries) if o]
            if not parts:
                continue
            inner = "".join(f"<component>{xml}</component>" for xml, _ in parts)
            entries.append(
                f'<entry><organizer classCode="CLUSTER" moodCode="EVN"><statusCode code="completed"/>'
                f"{inner}</organizer></entry>"
            )
            lines.append("；".join(text for _, text in parts))
    if not entries:
        return None
    code = (
        f'<code code="{spec.code}" codeSystem="{LOINC}" codeSystemName="LOINC"{_attr("displayName", spec.display)}/>'
        if spec.code
        else f"<code{_attr('displayName', spec.display)}/>"
    )
    narrative = "".join(f"<paragraph>{_text(line)}</paragraph>" for line in lines)
    return (
        f"<component><section>{code}<title>{_text(spec.title)}</title><text>{narrative}</text>"
        f"{''.join(entries)}</section></component>"
    )


def _id(root: str, extension: Any) -> str:
    if extension in (None, ""):
        return f'<id root="{root}" nullFlavor="UNK"/>'
    return f'<id root="{root}"{_attr("extension", extension)}/>'


def render(
    spec: DocumentSpec, row: dict[str, Any], components: dict[str, list[dict[str, Any]]], doc_id: str, set_id: str
) -> str:
    """The document as XML text."""
    p, a, c, enc = spec.patient, spec.author, spec.custodian, spec.encounter
    ids = "".join(_id(str(i["root"]), row.get(str(i["column"]))) for i in spec.patient_ids)
    sex = row.get(p.get("gender", ""))
    address = row.get(p.get("address", "")) if p.get("address") else None
    phone = row.get(p.get("phone", "")) if p.get("phone") else None
    role_extra = (
        f'<addr use="H"><streetAddressLine>{_text(address)}</streetAddressLine></addr>' if address else ""
    ) + (f'<telecom value="tel:{_text(phone)}"/>' if phone else "")
    patient = (
        f'<patient classCode="PSN" determinerCode="INSTANCE">{_id(ID_CARD_ROOT, row.get(p.get("id_card", "")))}'
        f"<name>{_text(row.get(p.get('name', '')))}</name>"
        f'<administrativeGenderCode{_attr("code", sex)} codeSystem="{GENDER_SYSTEM}" '
        f'codeSystemName="生理性别代码表(GB/T 2261.1)"{_attr("displayName", GENDER_NAMES.get(str(sex)))}/>'
        f"<birthTime{_attr('value', ts(row.get(p.get('birth', ''))))}/></patient>"
    )
    author_name = row.get(a.get("name", "")) if a.get("name") else None
    author = (
        f'<author typeCode="AUT" contextControlCode="OP"><time{_attr("value", ts(row.get(a.get("time", ""))))}/>'
        f'<assignedAuthor classCode="ASSIGNED">{_id("2.16.156.10011.1.7", row.get(a.get("id", "")))}'
        + (f"<assignedPerson><name>{_text(author_name)}</name></assignedPerson>" if author_name else "")
        + "</assignedAuthor></author>"
    )
    custodian = (
        '<custodian typeCode="CST"><assignedCustodian classCode="ASSIGNED"><representedCustodianOrganization '
        f'classCode="ORG" determinerCode="INSTANCE">{_id(ORG_ROOT, row.get(c.get("id", "")))}'
        f"<name>{_text(row.get(c.get('name', '')))}</name></representedCustodianOrganization></assignedCustodian>"
        "</custodian>"
    )
    encounter = ""
    if enc:
        high = ts(row.get(enc.get("high", ""))) if enc.get("high") else None
        encounter_id = _id(str(enc.get("root", "2.16.156.10011.1.11")), row.get(enc["id"]))
        encounter = (
            f"<componentOf><encompassingEncounter>{encounter_id}"
            f"<effectiveTime><low{_attr('value', ts(row.get(enc['low'])))}/>"
            + (f'<high value="{high}"/>' if high else "")
            + "</effectiveTime>"
            + (
                f"<location><healthCareFacility><serviceProviderOrganization><name>{_text(row.get(enc['dept']))}"
                "</name></serviceProviderOrganization></healthCareFacility></location>"
                if enc.get("dept") and row.get(enc["dept"])
                else ""
            )
            + "</encompassingEncounter></componentOf>"
        )
    sections = "".join(s for s in (_section(sec, row, components) for sec in spec.sections) if s)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        '<realmCode code="CN"/><typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>'
        f'<templateId root="{spec.template_id}"/>{_id(DOC_ID_ROOT, doc_id)}'
        f'<code code="{spec.code}" codeSystem="{spec.code_system}" codeSystemName="卫生信息共享文档规范编码体系"/>'
        f"<title>{_text(spec.title)}</title><effectiveTime{_attr('value', ts(row.get(spec.effective_time)))}/>"
        '<confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25" codeSystemName="Confidentiality" '
        'displayName="正常访问保密级别"/><languageCode code="zh-CN"/>'
        f'<setId root="{DOC_ID_ROOT}"{_attr("extension", set_id)}/><versionNumber value="1"/>'
        f'<recordTarget typeCode="RCT" contextControlCode="OP"><patientRole classCode="PAT">{ids}{role_extra}'
        f"{patient}</patientRole></recordTarget>{author}{custodian}{encounter}"
        f"<component><structuredBody>{sections}</structuredBody></component></ClinicalDocument>"
    )
