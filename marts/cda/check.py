"""Template check of a CDA R2 document against its WS/T 500 / WS/T 483 template: the header (CDA R2 fixed parts,
template and document type, ids, patient, author, custodian, encounter), the sections (required present, none
unknown) and the coded entries (data-element codes, value types, code systems, allowed codes, required values)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from functools import cache

from marts.cda import DE_SYSTEM, DOC_ID_ROOT, GENDER_SYSTEM, LOINC, NS, ORG_ROOT, XSI, DocumentSpec, EntrySpec

TS = re.compile(r"^\d{8}(\d{4}(\d{2})?)?$")
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")
XSI_TYPE = f"{{{XSI}}}type"


@cache
def _steps(path: str) -> tuple[str, ...]:
    """'h:a/h:b' as Clark-notation tags ('{urn:hl7-org:v3}a', ...): plain tags take ElementTree's C fast path."""
    return tuple(f"{{{NS}}}{step.removeprefix('h:')}" for step in path.split("/"))


def _find(node: ET.Element, path: str) -> ET.Element | None:
    found: ET.Element | None = node
    for tag in _steps(path):
        found = found.find(tag)
        if found is None:
            return None
    return found


def _findall(node: ET.Element, path: str) -> list[ET.Element]:
    nodes = [node]
    for tag in _steps(path):
        nodes = [child for n in nodes for child in n.findall(tag)]
    return nodes


def _require(
    node: ET.Element, path: str, what: str, errors: list[str], attr: str | None = None, equals: str | None = None
) -> ET.Element | None:
    found = _find(node, path)
    if found is None:
        errors.append(f"header: {what} missing")
        return None
    if attr:
        value = found.get(attr)
        if not value:
            errors.append(f"header: {what} has no @{attr}")
        elif equals is not None and value != equals:
            errors.append(f"header: {what} @{attr} is {value!r}, template says {equals!r}")
    return found


def _has_id(node: ET.Element | None, root: str) -> bool:
    return node is not None and any(i.get("root") == root and i.get("extension") for i in _findall(node, "h:id"))


def _header(doc: ET.Element, spec: DocumentSpec, errors: list[str]) -> None:
    _require(doc, "h:realmCode", "realmCode", errors, "code", "CN")
    _require(doc, "h:typeId", "typeId", errors, "extension", "POCD_MT000040")
    _require(doc, "h:templateId", "templateId", errors, "root", spec.template_id)
    doc_id = _require(doc, "h:id", "document id", errors, "extension")
    if doc_id is not None and doc_id.get("root") != DOC_ID_ROOT:
        errors.append(f"header: document id root is not {DOC_ID_ROOT}")
    code = _require(doc, "h:code", "document type code", errors, "code", spec.code)
    if code is not None and code.get("codeSystem") != spec.code_system:
        errors.append(f"header: document type code system is not {spec.code_system}")
    title = _find(doc, "h:title")
    if title is None or (title.text or "").strip() != spec.title:
        errors.append(f"header: title is not {spec.title!r}")
    effective = _require(doc, "h:effectiveTime", "effectiveTime", errors, "value")
    if effective is not None and effective.get("value") and not TS.match(effective.get("value", "")):
        errors.append("header: effectiveTime is not YYYYMMDD[HHMM[SS]]")
    _require(doc, "h:confidentialityCode", "confidentialityCode", errors, "code")
    _require(doc, "h:languageCode", "languageCode", errors, "code", "zh-CN")
    role = _find(doc, "h:recordTarget/h:patientRole")
    if role is None:
        errors.append("header: recordTarget/patientRole missing")
        return
    for spec_id in spec.patient_ids:
        if spec_id.get("required") and not _has_id(role, str(spec_id["root"])):
            errors.append(f"header: patientRole id {spec_id.get('name', spec_id['root'])} ({spec_id['root']}) missing")
    patient = _find(role, "h:patient")
    if patient is None:
        errors.append("header: patient missing")
    else:
        name = _find(patient, "h:name")
        if name is None or not (name.text or "").strip():
            errors.append("header: patient name missing")
        gender = _find(patient, "h:administrativeGenderCode")
        if (
            gender is None
            or gender.get("code") not in ("0", "1", "2", "9")
            or gender.get("codeSystem") != GENDER_SYSTEM
        ):
            errors.append("header: administrativeGenderCode missing or not GB/T 2261.1")
        birth = _find(patient, "h:birthTime")
        if birth is None or not TS.match(birth.get("value", "")):
            errors.append("header: birthTime missing or not a date")
    author = _find(doc, "h:author")
    if author is None or not TS.match(
        (_find(author, "h:time") if _find(author, "h:time") is not None else ET.Element("x")).get("value", "")
    ):
        errors.append("header: author time missing")
    elif _find(author, "h:assignedAuthor/h:id") is None:
        errors.append("header: author id missing")
    org = _find(doc, "h:custodian/h:assignedCustodian/h:representedCustodianOrganization")
    if not _has_id(org, ORG_ROOT):
        errors.append("header: custodian organization id missing")
    if spec.encounter:
        low = _find(doc, "h:componentOf/h:encompassingEncounter/h:effectiveTime/h:low")
        if low is None or not TS.match(low.get("value", "")):
            errors.append("header: encompassingEncounter effectiveTime/low missing")


def _check_value(observation: ET.Element, entry: EntrySpec, where: str, errors: list[str]) -> None:
    value = _find(observation, "h:value")
    if value is None:
        errors.append(f"{where}: {entry.name} ({entry.de}) has no value")
        return
    kind = value.get(XSI_TYPE)
    if kind != entry.type:
        errors.append(f"{where}: {entry.name} ({entry.de}) value type {kind}, template says {entry.type}")
        return
    if kind == "ST" and not (value.text or "").strip():
        errors.append(f"{where}: {entry.name} ({entry.de}) is empty")
    elif kind == "CD":
        if not value.get("code"):
            errors.append(f"{where}: {entry.name} ({entry.de}) has no code")
        elif entry.code_system and value.get("codeSystem") != entry.code_system:
            errors.append(f"{where}: {entry.name} ({entry.de}) code system is not {entry.code_system}")
        elif entry.values and value.get("code") not in entry.values:
            errors.append(f"{where}: {entry.name} ({entry.de}) code {value.get('code')!r} not in its value set")
        elif entry.pattern and not re.fullmatch(entry.pattern, value.get("code", "")):
            errors.append(f"{where}: {entry.name} ({entry.de}) code {value.get('code')!r} is not a valid code")
    elif kind == "TS" and not TS.match(value.get("value", "")):
        errors.append(f"{where}: {entry.name} ({entry.de}) is not a timestamp")
    elif kind in ("PQ", "REAL", "MO", "INT") and not NUMBER.match(value.get("value", "")):
        errors.append(f"{where}: {entry.name} ({entry.de}) is not a number")
    elif kind == "BL" and value.get("value") not in ("true", "false"):
        errors.append(f"{where}: {entry.name} ({entry.de}) is not true/false")


def _observations(node: ET.Element) -> dict[str, list[ET.Element]]:
    found: dict[str, list[ET.Element]] = {}
    for obs in node.iter(f"{{{NS}}}observation"):
        code = _find(obs, "h:code")
        if code is None or code.get("codeSystem") != DE_SYSTEM:
            continue
        found.setdefault(code.get("code", ""), []).append(obs)
    return found


def check(spec: DocumentSpec, xml: str | bytes) -> list[str]:
    """Every way the document departs from its template; empty when it conforms."""
    try:
        doc = ET.fromstring(xml)
    except ET.ParseError as exc:
        return [f"not well-formed XML: {exc}"]
    if doc.tag != f"{{{NS}}}ClinicalDocument":
        return [f"root element is {doc.tag}, not an HL7 v3 ClinicalDocument"]
    errors: list[str] = []
    _header(doc, spec, errors)
    body = _find(doc, "h:component/h:structuredBody")
    if body is None:
        return [*errors, "body: structuredBody missing"]
    by_key = {(s.code or s.title): s for s in spec.sections}
    present: dict[str, ET.Element] = {}
    for section in _findall(body, "h:component/h:section"):
        code = _find(section, "h:code")
        title = _find(section, "h:title")
        key = code.get("code") if code is not None and code.get("code") else (title.text if title is not None else "")
        if code is not None and code.get("code") and code.get("codeSystem") != LOINC:
            errors.append(f"section {key}: code system is not LOINC")
        if key not in by_key:
            errors.append(f"section {key!r} is not in the template")
            continue
        if key in present:
            errors.append(f"section {key!r} appears twice")
        present[key] = section
    for key, sec in by_key.items():
        where = f"section {sec.title}"
        if key not in present:
            if sec.required:
                errors.append(f"{where} ({key}) required but missing")
            continue
        node = present[key]
        if _find(node, "h:text") is None:
            errors.append(f"{where}: narrative text missing")
        found = _observations(node)
        for entry in sec.entries:
            hits = found.get(entry.de, [])
            if entry.required and not hits:
                errors.append(f"{where}: required entry {entry.name} ({entry.de}) missing")
            for obs in hits[:1]:
                _check_value(obs, entry, where, errors)
        for group in sec.groups:
            organizers = _findall(node, "h:entry/h:organizer")
            if group.required and not organizers:
                errors.append(f"{where}: no {group.component} entries")
            for organizer in organizers:
                inner = _observations(organizer)
                for entry in group.entries:
                    if entry.required and entry.de not in inner:
                        errors.append(f"{where}: a {group.component} entry lacks {entry.name} ({entry.de})")
                    for obs in inner.get(entry.de, [])[:1]:
                        _check_value(obs, entry, where, errors)
        known = {e.de for e in sec.entries} | {e.de for g in sec.groups for e in g.entries}
        for de in found:
            if de not in known:
                errors.append(f"{where}: entry {de} is not in the template")
    return errors
