"""Synthetic EMR: for every inpatient stay an admission record (入院记录, WS/T 500.34) at admission and a
discharge summary (出院小结, WS/T 500.53) at discharge, as CDA R2 XML in the WS/T 500 style — or, for an EMR
configured with `format: fhir`, one FHIR R4 document Bundle per discharge."""

from __future__ import annotations

import hashlib
import json
import random
from datetime import date, datetime, time, timedelta
from xml.sax.saxutils import escape

from synthetic.events import Encounter, WriterContext
from synthetic.files import FolderMaker

EMR_SYNC = time(23, 30)  # the EMR pushes the day's signed documents to the front-end folder at 23:30

KIND = "emr"
GENDER_OID = "2.16.156.10011.2.3.3.4"  # GB/T 2261.1 value set
ICD10_OID = "2.16.156.10011.2.3.3.11"  # ICD-10 (国家临床版)
ID_CARD_OID = "2.16.156.10011.1.3"  # 居民身份证号
EXPECTED_RULE = {
    "malformed_xml": "CDA-PARSE", "malformed_json": "FHIR-PARSE", "missing_required": "CDA-PATIENT-ID",
    "discharge_before_admission": "ENC-DISCHARGE-ORDER",
}  # fmt: skip
COMPLAINTS = {
    "I": "反复头晕、胸闷", "E": "口干、多饮、多尿", "J": "咳嗽、咳痰伴发热", "K": "腹痛", "S": "外伤后疼痛、活动受限",
    "O": "停经足月，下腹阵痛", "N": "乏力、水肿", "C": "咳嗽、消瘦",
}  # fmt: skip


def _ts(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M%S")


def _fhir_dt(value: datetime) -> str:
    """FHIR dateTime with the platform's UTC+8 offset (a time without zone is invalid FHIR)."""
    return value.isoformat() + "+08:00"


def _uuid(*parts: str) -> str:
    digest = hashlib.sha1("|".join(parts).encode()).hexdigest()
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-a{digest[17:20]}-{digest[20:32]}"


class EmrWriter:
    """One hospital's EMR documents for its inpatient stays."""

    kind = KIND

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx
        self.rng = random.Random(ctx.seed)
        self.fhir = ctx.settings.get("format") == "fhir"
        self.rates = {k: v * ctx.defect_multiplier for k, v in ctx.profiles["defects"]["by_kind"][KIND].items()}
        self.open_stays: dict[str, Encounter] = {}
        self.documents = 0
        self.files = FolderMaker()

    def on_day(self, day: date, encounters: list[Encounter]) -> None:
        records: list[list[str]] = []
        defects: list[list[str]] = []
        todo: list[tuple[str, Encounter]] = []
        for enc in encounters:
            if enc.setting == "ip":
                if not self.fhir:
                    todo.append(("admission", enc))
                if enc.end is not None:
                    self.open_stays[enc.encounter_key] = enc
        for key, enc in list(self.open_stays.items()):
            if enc.end is not None and enc.end.date() <= day:
                todo.append(("discharge", enc))
                del self.open_stays[key]
        for doc_type, enc in todo:
            defect = self._defect()
            if doc_type == "admission" and defect == "discharge_before_admission":
                defect = ""  # an admission record has no discharge time to get wrong
            if self.fhir:
                rel, text = self._bundle(enc, day, defect)
                key = rel.rsplit("/", 1)[1].removesuffix(".json")
            else:
                rel, text = self._cda(doc_type, enc, day, defect)
                key = rel.rsplit("/", 1)[1].removesuffix(".xml")
            self.files.write_bytes(
                self.ctx.out_dir / rel, text.encode("utf-8"), arrived=datetime.combine(day, EMR_SYNC)
            )
            self.documents += 1
            records.append([self.ctx.org_code, "EMR", "clinical_document", rel, key, enc.person.person_id])
            if defect:
                kind = "malformed_json" if self.fhir and defect == "malformed_xml" else defect
                field = {"malformed_xml": "document", "missing_required": "patient id",
                         "discharge_before_admission": "encounter period"}[defect]  # fmt: skip
                defect_type = "malformed_xml" if defect == "malformed_xml" else defect
                defects.append([self.ctx.org_code, KIND, rel, key, defect_type, field, EXPECTED_RULE[kind]])
        self.ctx.truth.records(records)
        self.ctx.truth.defects(defects)

    def _defect(self) -> str:
        roll = self.rng.random()
        for name, rate in self.rates.items():
            if roll < rate:
                return name
            roll -= rate
        return ""

    def _narrative(self, enc: Encounter) -> dict[str, str]:
        complaint = COMPLAINTS.get(enc.icd10[:1], "不适")
        days = self.rng.randint(1, 30)
        return {
            "主诉": f"{complaint}{days}天",
            "现病史": f"患者{days}天前无明显诱因出现{complaint}，于{enc.start:%Y年%m月%d日}来我院就诊，"
            f"门诊以“{enc.diagnosis_name}”收入院。",
            "入院诊断": enc.diagnosis_name,
            "诊疗经过": f"入院后完善相关检查，明确诊断为{enc.diagnosis_name}，予对症支持治疗，病情好转。",
            "出院诊断": enc.diagnosis_name,
            "出院医嘱": "注意休息，按时服药，定期门诊复查，不适随诊。",
        }

    def _cda(self, doc_type: str, enc: Encounter, day: date, defect: str) -> tuple[str, str]:
        person = enc.person
        admission = doc_type == "admission"
        doc_id = f"{self.ctx.short}{'RY' if admission else 'CY'}{enc.encounter_key}"
        title, part, loinc = ("入院记录", "WS/T 500.34-2016", "34117-2") if admission else (
            "出院小结", "WS/T 500.53-2016", "18842-5")  # fmt: skip
        created = enc.start + timedelta(hours=self.rng.randint(2, 20)) if admission else enc.end
        assert created is not None
        low, high = enc.start, enc.end
        if defect == "discharge_before_admission" and high is not None:
            high = low - timedelta(days=self.rng.randint(1, 3))
        patient_id = "" if defect == "missing_required" else enc.local_patient_id
        id_card = f'\n        <id root="{ID_CARD_OID}" extension="{person.id_no}"/>'
        narrative = self._narrative(enc)
        wanted = ["主诉", "现病史", "入院诊断"] if admission else ["入院诊断", "诊疗经过", "出院诊断", "出院医嘱"]
        sections = []
        for name in wanted:
            code = ""
            if "诊断" in name:
                code = (f'\n          <entry><observation classCode="OBS" moodCode="EVN"><code code="{enc.icd10}" '
                        f'codeSystem="{ICD10_OID}" codeSystemName="ICD-10" displayName="{escape(enc.diagnosis_name)}"/>'
                        "</observation></entry>")  # fmt: skip
            sections.append(
                f"      <component><section><title>{name}</title><text>{escape(narrative[name])}</text>{code}"
                "\n      </section></component>"
            )
        effective_high = f'<high value="{_ts(high)}"/>' if (high is not None and not admission) else ""
        xml = f"""<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <realmCode code="CN"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_MT000040"/>
  <templateId root="2.16.156.10011.2.1.1" extension="{part}"/>
  <id root="2.16.156.10011.1.1.{self.ctx.org_code}" extension="{doc_id}"/>
  <code code="{loinc}" codeSystem="2.16.840.1.113883.6.1" codeSystemName="LOINC" displayName="{title}"/>
  <title>{title}</title>
  <effectiveTime value="{_ts(created)}"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="zh-CN"/>
  <recordTarget>
    <patientRole>
      <id root="2.16.156.10011.1.2.{self.ctx.org_code}" extension="{patient_id}"/>{id_card}
      <patient>
        <name>{escape(enc.patient_name)}</name>
        <administrativeGenderCode code="{person.sex}" codeSystem="{GENDER_OID}"/>
        <birthTime value="{person.birth_date:%Y%m%d}"/>
      </patient>
    </patientRole>
  </recordTarget>
  <author><time value="{_ts(created)}"/><assignedAuthor><id extension="{enc.doctor_id}"/></assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="2.16.156.10011.1.5" extension="{self.ctx.org_code}"/><name>{escape(self.ctx.name)}</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <componentOf><encompassingEncounter>
    <id root="2.16.156.10011.1.11.{self.ctx.org_code}" extension="{enc.encounter_key}"/>
    <effectiveTime><low value="{_ts(low)}"/>{effective_high}</effectiveTime>
    <location><healthCareFacility><id extension="{enc.dept_code}"/></healthCareFacility></location>
  </encompassingEncounter></componentOf>
  <component>
    <structuredBody>
{chr(10).join(sections)}
    </structuredBody>
  </component>
</ClinicalDocument>
"""
        if defect == "malformed_xml":
            xml = xml[: int(len(xml) * self.rng.uniform(0.4, 0.9))]
        return f"cda/{created:%Y%m%d}/{doc_id}.xml", xml

    def _bundle(self, enc: Encounter, day: date, defect: str) -> tuple[str, str]:
        person = enc.person
        org = self.ctx.org_code
        bundle_id = f"{self.ctx.short}-{enc.encounter_key}"
        ids = {name: _uuid(org, enc.encounter_key, name) for name in ("patient", "encounter", "condition",
               "composition", "practitioner", "organization")}  # fmt: skip
        end = enc.end or datetime.combine(day, datetime.min.time())
        start = enc.start
        if defect == "discharge_before_admission":
            end = start - timedelta(days=self.rng.randint(1, 3))
        identifiers = [{"system": f"urn:oid:2.16.156.10011.1.2.{org}", "value": enc.local_patient_id}]
        if defect == "missing_required":
            identifiers = []
        identifiers.append({"system": f"urn:oid:{ID_CARD_OID}", "value": person.id_no})
        narrative = self._narrative(enc)

        def ref(name: str) -> dict[str, str]:
            return {"reference": f"urn:uuid:{ids[name]}"}

        resources = [
            {"resourceType": "Composition", "id": ids["composition"], "status": "final",
             "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5", "display": "Discharge summary"}],
                      "text": "出院小结"},
             "subject": ref("patient"), "encounter": ref("encounter"), "date": _fhir_dt(end),
             "author": [ref("practitioner")], "title": "出院小结", "custodian": ref("organization"),
             "section": [{"title": name, "text": {"status": "generated",
                                                  "div": f'<div xmlns="http://www.w3.org/1999/xhtml">{escape(text)}</div>'}}
                         for name, text in narrative.items() if name != "主诉"]},
            {"resourceType": "Patient", "id": ids["patient"], "identifier": identifiers,
             "name": [{"text": enc.patient_name, "family": enc.patient_name[:1], "given": [enc.patient_name[1:]]}],
             "gender": "male" if person.sex == "1" else "female", "birthDate": person.birth_date.isoformat(),
             "address": [{"text": person.address}]},
            {"resourceType": "Encounter", "id": ids["encounter"], "status": "finished",
             "identifier": [{"system": f"urn:oid:2.16.156.10011.1.11.{org}", "value": enc.encounter_key}],
             "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
             "subject": ref("patient"), "period": {"start": _fhir_dt(start), "end": _fhir_dt(end)},
             "serviceProvider": ref("organization")},
            {"resourceType": "Condition", "id": ids["condition"],
             "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": enc.icd10,
                                  "display": enc.diagnosis_name}]},
             "subject": ref("patient"), "encounter": ref("encounter")},
            {"resourceType": "Practitioner", "id": ids["practitioner"],
             "identifier": [{"system": f"urn:oid:2.16.156.10011.1.4.{org}", "value": enc.doctor_id}]},
            {"resourceType": "Organization", "id": ids["organization"],
             "identifier": [{"system": "urn:oid:2.16.156.10011.1.5", "value": org}], "name": self.ctx.name},
        ]  # fmt: skip
        bundle = {
            "resourceType": "Bundle", "id": bundle_id, "type": "document",
            "identifier": {"system": f"urn:oid:2.16.156.10011.1.1.{org}", "value": bundle_id},
            "timestamp": _fhir_dt(end),
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }  # fmt: skip
        text = json.dumps(bundle, ensure_ascii=False, indent=1)
        if defect == "malformed_xml":  # a truncated upload
            text = text[: int(len(text) * self.rng.uniform(0.4, 0.9))]
        folder = f"{max(end, start):%Y%m%d}"
        return f"fhir/{folder}/{bundle_id}.json", text

    def finish(self) -> dict[str, int]:
        return {"fhir_bundles" if self.fhir else "cda_documents": self.documents}


def make_writer(ctx: WriterContext) -> EmrWriter:
    return EmrWriter(ctx)
