"""FHIR transaction bundles, one per encounter: Patient, Encounter, Condition, Procedure, Observation,
DiagnosticReport, ImagingStudy, MedicationRequest, every entry a PUT of a deterministic id (re-sending a bundle
updates, never duplicates, on any FHIR server).

Version on the wire: FHIR 4.3.0 (R4B), declared as `fhirVersion=4.3` in the content type, validated with
fhir.resources' R4B models. For these eight resources R4B is element-for-element R4 (HL7: R4B changed only the
medication-definition, evidence and subscription modules), so an R4 (4.0.1) server accepts the content as is;
`options.fhir_version` in the feed file changes the declared version for a receiver that insists on 4.0.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from typing import Any

from fhir.resources.R4B.bundle import Bundle
from fhir_core.fhirabstractmodel import FHIRAbstractModel
from pydantic import ValidationError

from marts.feed_config import Feed
from marts.formats import BuildError, Record

GENDER = {"1": "male", "2": "female", "0": "unknown", "9": "unknown"}
INTERPRETATION = {"H": "H", "HH": "HH", "L": "L", "LL": "LL", "N": "N", "A": "A"}
V3_ACT = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
SHARED = ("Patient",)  # resources that repeat across bundles (validated once per distinct content)
MAX_REMEMBERED = 100_000  # bounded memory
VALIDATORS_ENV = "HUTONG_FHIR_VALIDATORS"  # validator processes (default: one per core; 0: validate in the run)
CHUNK = 25  # bundles per validation task
CHILD_TYPES = ("Condition", "Procedure", "Observation", "DiagnosticReport", "ImagingStudy", "MedicationRequest")


def fhir_id(kind: str, key: str) -> str:
    """A stable resource id from a record key (FHIR ids: 1–64 of [A-Za-z0-9.-])."""
    return hashlib.sha1(f"{kind}|{key}".encode()).hexdigest()


def _dt(value: Any, tz: str) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%S") + tz
    if isinstance(value, date):
        return value.isoformat()
    text = str(value).strip()
    if len(text) == 10:
        return text
    return text.replace(" ", "T")[:19] + tz


def _num(value: Any) -> float | int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def _code(system: str | None, code: Any, display: Any = None, text: Any = None) -> dict[str, Any] | None:
    coding = {k: v for k, v in (("system", system), ("code", code), ("display", display)) if v not in (None, "")}
    out: dict[str, Any] = {}
    if coding.get("code"):
        out["coding"] = [coding]
    if text or display:
        out["text"] = str(text or display)
    return out or None


EMPTY = (None, "", [], {})


def _clean(node: Any) -> Any:
    """Drop empty values (FHIR forbids empty strings, lists and objects)."""
    if type(node) is dict:
        out = {}
        for k, v in node.items():
            if type(v) is dict or type(v) is list:
                v = _clean(v)
            if v not in EMPTY:
                out[k] = v
        return out
    if type(node) is list:
        out_list = []
        for v in node:
            if type(v) is dict or type(v) is list:
                v = _clean(v)
            if v not in EMPTY:
                out_list.append(v)
        return out_list
    return node


@cache
def resource_model(kind: str) -> type[FHIRAbstractModel]:
    """The fhir.resources R4B model class of a resource type (Patient → fhir.resources.R4B.patient.Patient)."""
    return getattr(importlib.import_module(f"fhir.resources.R4B.{kind.lower()}"), kind)


def validate_bundle(bundle: dict[str, Any], valid: set[str] | None = None) -> None:
    """Validate a transaction bundle with the R4B models: the Bundle with its entries' fullUrl and request, and
    each entry's resource with its own resource model — what `Bundle.model_validate` checks, without its generic
    per-entry resource-type lookup (about twice as fast). Raises pydantic's ValidationError.

    `valid` remembers resources shared between bundles (SHARED: a patient's Patient in each of its encounters)
    that validated already, by their exact JSON, so identical content is validated once per run."""
    entries = bundle.get("entry") or []
    Bundle.model_validate({**bundle, "entry": [{k: v for k, v in e.items() if k != "resource"} for e in entries]})
    for entry in entries:
        resource = entry.get("resource")
        if resource is None:
            continue
        kind = resource["resourceType"]
        if valid is None or kind not in SHARED:
            resource_model(kind).model_validate(resource)
            continue
        text = json.dumps(resource, sort_keys=True, ensure_ascii=False)
        if text not in valid:
            resource_model(kind).model_validate(resource)
            if len(valid) >= MAX_REMEMBERED:
                valid.clear()
            valid.add(text)


def check(bundle: dict[str, Any], valid: set[str] | None = None) -> str | None:
    """None when the bundle validates (validate_bundle), else the reason it does not (its first three errors)."""
    try:
        validate_bundle(bundle, valid)
    except ValidationError as exc:
        lines = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        return "FHIR R4B validation: " + "; ".join(lines)
    return None


_WORKER_VALID: set[str] = set()  # shared resources a validator process has validated (validate_bundle)


def check_texts(texts: list[str]) -> list[str | None]:
    """In a validator process: check bundles sent as their JSON text (exactly the bytes that go out)."""
    return [check(json.loads(text), _WORKER_VALID) for text in texts]


def validator_count() -> int:
    value = os.environ.get(VALIDATORS_ENV, "")
    return int(value) if value.strip() else (os.cpu_count() or 1)


_pool: ProcessPoolExecutor | None = None


def validators() -> ProcessPoolExecutor | None:
    """The validator processes, started once per process and kept for later runs (None: validate inline)."""
    global _pool
    if _pool is None and validator_count() > 0:
        _pool = ProcessPoolExecutor(validator_count(), mp_context=multiprocessing.get_context("spawn"))
    return _pool


def validator_cpu_seconds() -> float:
    """CPU seconds (user + system) the live validator processes have used (benchmarks add it to their own)."""
    import psutil

    total = 0.0
    for pid in list(getattr(_pool, "_processes", None) or {}):
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def _drop_pool() -> None:
    global _pool
    if _pool is not None:
        _pool.shutdown(wait=False, cancel_futures=True)
    _pool = None


def bundle_text(bundle: dict[str, Any]) -> str:
    """A bundle as sent: compact JSON, UTF-8 characters as they are."""
    return json.dumps(bundle, ensure_ascii=False, separators=(",", ":"))


class FhirFormat:
    """Builds and validates one transaction bundle per encounter record."""

    supports_delete = True

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        opts = feed.options
        self.version = str(opts.get("fhir_version", "4.3"))
        self.tz = str(opts.get("timezone", "+08:00"))
        self.systems: dict[str, str] = dict(opts.get("systems") or {})
        self.classes: dict[str, str] = {str(k): str(v) for k, v in (opts.get("encounter_class") or {}).items()}
        self.extension = "json" if feed.max_records == 1 else "ndjson"
        kind = "application/fhir+json" if feed.max_records == 1 else "application/fhir+ndjson"
        self.content_type = f"{kind}; fhirVersion={self.version}"
        self.valid: set[str] = set()  # shared resources validated in this run (validate_bundle)
        self.pooled = 0  # bundles whose validation ran in the validator processes

    def system(self, name: str, org: str = "") -> str | None:
        value = self.systems.get(name)
        return value.replace("{org}", org) if value else None

    # -- resources ----------------------------------------------------------------------------------
    def patient(self, r: dict[str, Any], org: str) -> dict[str, Any]:
        identifiers = [
            {"use": "official", "system": self.system("empi"), "value": r.get("empi_id")},
            {"use": "usual", "system": self.system("local_patient", org), "value": r.get("local_patient_id")},
            {"system": self.system("id_card"), "value": r.get("id_no")},
        ]
        return {
            "resourceType": "Patient",
            "id": fhir_id("Patient", str(r.get("empi_id") or r["patient_key"])),
            "identifier": [i for i in identifiers if i.get("value")],
            "name": [{"text": r.get("patient_name")}] if r.get("patient_name") else [],
            "telecom": [{"system": "phone", "value": r["phone"]}] if r.get("phone") else [],
            "gender": GENDER.get(str(r.get("sex_code")), "unknown"),
            "birthDate": _dt(r.get("birth_date"), self.tz),
            "address": [{"text": r["address"]}] if r.get("address") else [],
            "managingOrganization": self.organization(org, r.get("org_name")),
        }

    def organization(self, org: str, name: Any = None) -> dict[str, Any]:
        return {"identifier": {"system": self.system("organization"), "value": org}, "display": name}

    def encounter(self, r: dict[str, Any], org: str, pid: str, eid: str) -> dict[str, Any]:
        klass = self.classes.get(str(r.get("encounter_class_code")), "AMB")
        inpatient = klass == "IMP"
        finished = r.get("end_time") is not None or not inpatient
        return {
            "resourceType": "Encounter",
            "id": eid,
            "identifier": [{"system": self.system("encounter", org), "value": r.get("local_encounter_id")}],
            "status": "finished" if finished else "in-progress",
            "class": {"system": V3_ACT, "code": klass, "display": r.get("encounter_class_name")},
            "subject": {"reference": f"Patient/{pid}"},
            "period": {"start": _dt(r.get("start_time"), self.tz), "end": _dt(r.get("end_time"), self.tz)},
            "serviceType": _code(self.system("department", org), r.get("dept_code"), r.get("dept_name")),
            "participant": [
                {
                    "individual": {
                        "identifier": {"system": self.system("practitioner", org), "value": r.get("doctor_id")}
                    }
                }
            ]
            if r.get("doctor_id")
            else [],
            "serviceProvider": self.organization(org, r.get("org_name")),
        }

    def condition(self, c: dict[str, Any], pid: str, eid: str) -> dict[str, Any]:
        system = self.system("icd10") if c.get("code_system") == "ICD-10" else self.system("local_diagnosis")
        return {
            "resourceType": "Condition",
            "id": fhir_id("Condition", str(c["id"])),
            "verificationStatus": _code("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed"),
            "category": [_code(CONDITION_CATEGORY, "encounter-diagnosis")],
            "code": _code(system, c.get("code"), c.get("display")),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "recordedDate": _dt(c.get("recorded_time"), self.tz),
        }

    def procedure(self, p: dict[str, Any], pid: str, eid: str) -> dict[str, Any]:
        return {
            "resourceType": "Procedure",
            "id": fhir_id("Procedure", str(p["id"])),
            "status": "completed",
            "code": _code(self.system("icd9cm3"), p.get("code"), p.get("display")),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "performedDateTime": _dt(p.get("performed_time"), self.tz),
        }

    def observation(self, o: dict[str, Any], pid: str, eid: str) -> dict[str, Any]:
        value = _num(o.get("value_num"))
        unit = o.get("unit") or None
        low, high = _num(o.get("ref_low")), _num(o.get("ref_high"))
        coding = [
            {"system": self.system("loinc"), "code": o.get("loinc_code"), "display": o.get("display")},
            {"system": self.system("local_lab", str(o.get("org") or "")), "code": o.get("local_code")},
        ]
        flag = INTERPRETATION.get(str(o.get("flag") or "").upper())
        return {
            "resourceType": "Observation",
            "id": fhir_id("Observation", str(o["id"])),
            "status": "final",
            "category": [_code("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory")],
            "code": {"coding": [c for c in coding if c.get("code")], "text": o.get("display")},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "effectiveDateTime": _dt(o.get("effective_time"), self.tz),
            "valueQuantity": {"value": value, "unit": unit} if value is not None else None,
            "valueString": None if value is not None else (str(o["value_text"]) if o.get("value_text") else None),
            "interpretation": [_code(V3_INTERP, flag)] if flag else [],
            "referenceRange": [
                {
                    "low": {"value": low, "unit": unit} if low is not None else None,
                    "high": {"value": high, "unit": unit} if high is not None else None,
                    "text": o.get("ref_text"),
                }
            ],
        }

    def report(self, d: dict[str, Any], pid: str, eid: str, results: list[str], studies: list[str]) -> dict[str, Any]:
        category = "RAD" if d.get("category") == "RAD" else "LAB"
        return {
            "resourceType": "DiagnosticReport",
            "id": fhir_id("DiagnosticReport", str(d["id"])),
            "status": "final",
            "category": [_code(V2_0074, category)],
            "code": _code(self.system("loinc"), d.get("loinc_code"), d.get("display"), d.get("display") or category),
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "effectiveDateTime": _dt(d.get("effective_time"), self.tz),
            "issued": _dt(d.get("issued_time"), self.tz) if isinstance(d.get("issued_time"), datetime) else None,
            "result": [{"reference": f"Observation/{i}"} for i in results],
            "imagingStudy": [{"reference": f"ImagingStudy/{i}"} for i in studies],
            "conclusion": d.get("conclusion"),
        }

    def imaging(self, s: dict[str, Any], pid: str, eid: str) -> dict[str, Any]:
        modality = s.get("modality")
        return {
            "resourceType": "ImagingStudy",
            "id": fhir_id("ImagingStudy", str(s["id"])),
            "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{s['study_uid']}"}]
            if s.get("study_uid")
            else [],
            "status": "available",
            "modality": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": modality}]
            if modality
            else [],
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "started": _dt(s.get("started"), self.tz),
            "numberOfSeries": int(s["series_count"]) if _num(s.get("series_count")) is not None else None,
            "numberOfInstances": int(s["instance_count"]) if _num(s.get("instance_count")) is not None else None,
            "description": s.get("description"),
        }

    def medication(self, m: dict[str, Any], pid: str, eid: str, org: str) -> dict[str, Any]:
        coding = [
            {"system": "http://www.whocc.no/atc", "code": m.get("atc_code")},
            {"system": self.system("local_drug", org), "code": m.get("drug_code"), "display": m.get("drug_name")},
        ]
        dose = _num(m.get("dose"))
        return {
            "resourceType": "MedicationRequest",
            "id": fhir_id("MedicationRequest", str(m["id"])),
            "status": "completed",
            "intent": "order",
            "medicationCodeableConcept": {"coding": [c for c in coding if c.get("code")], "text": m.get("drug_name")},
            "subject": {"reference": f"Patient/{pid}"},
            "encounter": {"reference": f"Encounter/{eid}"},
            "authoredOn": _dt(m.get("authored_time"), self.tz),
            "dosageInstruction": [
                {
                    "text": " ".join(
                        str(v)
                        for v in (m.get("dose"), m.get("dose_unit"), m.get("route"), m.get("frequency"))
                        if v not in (None, "")
                    ),
                    "route": _code(None, None, None, m.get("route")),
                    "doseAndRate": [{"doseQuantity": {"value": dose, "unit": m.get("dose_unit")}}]
                    if dose is not None
                    else [],
                }
            ],
            "dispenseRequest": {"quantity": {"value": _num(m.get("quantity")), "unit": m.get("quantity_unit")}}
            if _num(m.get("quantity")) is not None
            else None,
        }

    # -- bundle -------------------------------------------------------------------------------------
    def build(self, record: Record) -> dict[str, Any]:
        """One validated bundle (the dict); raises BuildError when it does not validate."""
        bundle = self.assemble(record)
        reason = check(bundle, self.valid)
        if reason:
            raise BuildError("fhir_invalid", reason)
        return bundle

    def build_many(self, records: list[Record]) -> list[str | BuildError]:
        """A page of bundles as their JSON text (what `package` writes), or the BuildError of each that does not
        validate. Validation — most of the cost — runs in the validator processes, chunk by chunk while the
        rest of the page is still being assembled here; inline when there are none or the page is small."""
        pool = validators() if len(records) > CHUNK else None
        texts: list[str] = []
        futures: list[Future] = []
        reasons: list[str | None] | None = None
        try:
            for record in records:
                texts.append(bundle_text(self.assemble(record)))
                if pool is not None and len(texts) % CHUNK == 0:
                    futures.append(pool.submit(check_texts, texts[-CHUNK:]))
            if pool is not None:
                if len(texts) % CHUNK:
                    futures.append(pool.submit(check_texts, texts[-(len(texts) % CHUNK) :]))
                reasons = [r for f in futures for r in f.result()]
                self.pooled += len(reasons)
        except BrokenProcessPool:  # a validator died (killed, out of memory, no __main__ guard): validate here
            _drop_pool()
            texts = [bundle_text(self.assemble(r)) for r in records]
        if reasons is None:
            reasons = [check(json.loads(t), self.valid) for t in texts]
        return [t if r is None else BuildError("fhir_invalid", r) for t, r in zip(texts, reasons, strict=True)]

    def assemble(self, record: Record) -> dict[str, Any]:
        """The transaction bundle of one record (not validated yet)."""
        eid = fhir_id("Encounter", record.key)
        if record.op == "D":
            entries = [
                {"request": {"method": "DELETE", "url": f"{kind}?encounter=Encounter/{eid}"}} for kind in CHILD_TYPES
            ]
            entries.append({"request": {"method": "DELETE", "url": f"Encounter/{eid}"}})
            return self._bundle(record.key, entries)
        r, org, comps = record.row, record.org_code, record.components
        patient = self.patient(r, org)
        pid = patient["id"]
        resources = [patient, self.encounter(r, org, pid, eid)]
        resources += [self.condition(c, pid, eid) for c in comps.get("conditions", [])]
        resources += [self.procedure(p, pid, eid) for p in comps.get("procedures", [])]
        observations = [self.observation(o, pid, eid) for o in comps.get("observations", [])]
        studies = [self.imaging(s, pid, eid) for s in comps.get("imaging", [])]
        by_report: dict[str, list[str]] = {}
        for o, row in zip(observations, comps.get("observations", []), strict=True):
            if row.get("report_id"):
                by_report.setdefault(str(row["report_id"]), []).append(o["id"])
        study_ids = {str(s.get("report_id")): fhir_id("ImagingStudy", str(s["id"])) for s in comps.get("imaging", [])}
        reports = [
            self.report(
                d,
                pid,
                eid,
                by_report.get(str(d["id"]), []),
                [study_ids[str(d["id"])]] if str(d["id"]) in study_ids else [],
            )
            for d in comps.get("reports", [])
        ]
        resources += observations + reports + studies
        resources += [self.medication(m, pid, eid, org) for m in comps.get("medications", [])]
        entries = [
            {
                "fullUrl": f"urn:uuid:{self._uuid(res['resourceType'], res['id'])}",
                "resource": _clean(res),
                "request": {"method": "PUT", "url": f"{res['resourceType']}/{res['id']}"},
            }
            for res in resources
        ]
        return self._bundle(record.key, entries)

    @staticmethod
    def _uuid(kind: str, rid: str) -> str:
        h = hashlib.sha1(f"{kind}/{rid}".encode()).hexdigest()
        return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-8{h[17:20]}-{h[20:32]}"

    def _bundle(self, key: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        bundle = {  # entries' resources are clean already (build)
            "resourceType": "Bundle",
            "id": fhir_id("Bundle", key),
            "identifier": _clean({"system": self.system("bundle"), "value": fhir_id("Bundle", key)}),
            "type": "transaction",
            "entry": entries,
        }
        return {k: v for k, v in bundle.items() if v not in EMPTY}

    def package(self, items: list[str | dict[str, Any]]) -> bytes:
        """Bundles (JSON text from build_many, or dicts from build) as one JSON document or NDJSON lines."""
        texts = [i if isinstance(i, str) else bundle_text(i) for i in items]
        if self.feed.max_records == 1:
            return texts[0].encode()
        return "".join(t + "\n" for t in texts).encode()
