"""Synthetic PACS: imaging studies for the day's encounters as DICOM Part-10 files (headers, no pixel data,
UTF-8 Chinese names) plus one imaging report per study (JSON), in the institution's PACS drop folder."""

from __future__ import annotations

import csv
import hashlib
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache

from synthetic.dicom import part10
from synthetic.events import Encounter, WriterContext
from synthetic.files import FolderMaker, flat_json
from synthetic.population import DATA

KIND = "pacs"
PRIMARY_CARE_FACTOR = 0.3  # township centres: DR and ultrasound only, far fewer studies
PRIMARY_CARE_MODALITIES = ("DX", "US")
ABNORMAL_IF_RELATED = 0.7
EXPECTED_RULE = {"missing_required": "PACS-PATIENT-ID", "unmapped_code": "PACS-EXAM-CODE",
                 "out_of_range": "PACS-REPORT-ORDER"}  # fmt: skip


@dataclass(frozen=True)
class Exam:
    code: str
    name: str
    modality: str
    body_part: str
    sop_class: str
    settings: tuple[str, ...]
    prefixes: tuple[str, ...]
    normal_finding: str
    abnormal_finding: str
    normal_impression: str
    abnormal_impression: str


@cache
def exams() -> tuple[Exam, ...]:
    with (DATA / "imaging_exams.csv").open(encoding="utf-8") as handle:
        return tuple(
            Exam(
                r["code"],
                r["name"],
                r["modality"],
                r["body_part"],
                r["sop_class"],
                tuple(r["settings"].split("|")),
                tuple(r["icd10_prefixes"].split("|")),
                r["normal_finding"],
                r["abnormal_finding"],
                r["normal_impression"],
                r["abnormal_impression"],
            )
            for r in csv.DictReader(handle)
        )


def uid(*parts: str) -> str:
    """A deterministic DICOM UID under the 2.25 (UUID-derived) root."""
    return "2.25." + str(int(hashlib.sha1("|".join(parts).encode()).hexdigest()[:30], 16))


class PacsWriter:
    kind = KIND

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx
        self.rng = random.Random(ctx.seed)
        self.primary = ctx.institution_type != "二级医院"
        self.rates = {k: v * ctx.defect_multiplier for k, v in ctx.profiles["defects"]["by_kind"][KIND].items()}
        self.study_share = ctx.profiles["imaging_share"]
        self.studies = 0
        self.seq = 0
        self.files = FolderMaker()

    def on_day(self, day: date, encounters: list[Encounter]) -> None:
        records: list[list[str]] = []
        defects: list[list[str]] = []
        for enc in encounters:
            share = self.study_share[enc.setting] * (PRIMARY_CARE_FACTOR if self.primary else 1.0)
            if self.rng.random() >= share:
                continue
            options = [e for e in exams() if enc.setting in e.settings
                       and (not self.primary or e.modality in PRIMARY_CARE_MODALITIES)]  # fmt: skip
            related = [e for e in options if any(enc.icd10.startswith(p) for p in e.prefixes)]
            if not options:
                continue
            exam = self.rng.choice(related) if related and self.rng.random() < 0.8 else self.rng.choice(options)
            abnormal = exam in related and self.rng.random() < ABNORMAL_IF_RELATED
            self.seq += 1
            accession = f"{self.ctx.short[:4]}{day:%y%m%d}{self.seq:06d}"  # SH: at most 16 characters
            studied = max(enc.start, datetime.combine(day, datetime.min.time())) + timedelta(
                minutes=self.rng.randint(20, 300)
            )
            defect = self._defect()
            dicom_rel = f"dicom/{day:%Y%m%d}/{accession}.dcm"
            report_rel = f"reports/{day:%Y%m%d}/{accession}.json"
            self._write_dicom(dicom_rel, enc, exam, accession, studied, defect)
            self._write_report(report_rel, enc, exam, accession, studied, abnormal, defect)
            for rel, entity in ((dicom_rel, "imaging_study"), (report_rel, "imaging_report")):
                records.append([self.ctx.org_code, "PACS", entity, rel, accession, enc.person.person_id])
            if defect:
                rel, field = {
                    "missing_required": (dicom_rel, "PatientID"),
                    "unmapped_code": (report_rel, "exam_code"),
                    "out_of_range": (report_rel, "report_time"),
                }[defect]
                defects.append([self.ctx.org_code, KIND, rel, accession, defect, field, EXPECTED_RULE[defect]])
            self.studies += 1
        self.ctx.truth.records(records)
        self.ctx.truth.defects(defects)

    def _defect(self) -> str:
        roll = self.rng.random()
        for name, rate in self.rates.items():
            if roll < rate:
                return name
            roll -= rate
        return ""

    def _write_dicom(self, rel: str, enc: Encounter, exam: Exam, accession: str, studied: datetime,
                     defect: str) -> None:  # fmt: skip
        org = self.ctx.org_code
        study_uid = uid(org, accession, "study")
        series_uid = uid(org, accession, "series")
        sop_uid = uid(org, accession, "instance", "1")
        stamp_date, stamp_time = studied.strftime("%Y%m%d"), studied.strftime("%H%M%S")
        data = part10({
            "SpecificCharacterSet": "ISO_IR 192", "SOPClassUID": exam.sop_class, "SOPInstanceUID": sop_uid,
            "StudyDate": stamp_date, "SeriesDate": stamp_date, "ContentDate": stamp_date, "StudyTime": stamp_time,
            "SeriesTime": stamp_time, "ContentTime": stamp_time, "AccessionNumber": accession,
            "Modality": exam.modality, "InstitutionName": self.ctx.name, "ReferringPhysicianName": enc.doctor_id,
            "StudyDescription": exam.name, "SeriesDescription": exam.name,
            "PatientName": f"{enc.patient_name[:1]}^{enc.patient_name[1:]}",
            "PatientID": "" if defect == "missing_required" else enc.local_patient_id, "IssuerOfPatientID": org,
            "PatientBirthDate": enc.person.birth_date.strftime("%Y%m%d"),
            "PatientSex": "M" if enc.person.sex == "1" else "F", "AdmissionID": enc.encounter_key,
            "BodyPartExamined": exam.body_part, "StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
            "StudyID": accession[-6:], "SeriesNumber": 1, "InstanceNumber": 1,
        })  # fmt: skip
        self.files.write_bytes(self.ctx.out_dir / rel, data, arrived=studied)

    def _write_report(self, rel: str, enc: Encounter, exam: Exam, accession: str, studied: datetime,
                      abnormal: bool, defect: str) -> None:  # fmt: skip
        reported = studied + timedelta(minutes=self.rng.randint(30, 24 * 60))
        if defect == "out_of_range":
            reported = studied - timedelta(minutes=self.rng.randint(30, 600))
        report = {
            "accession_number": accession,
            "org_code": self.ctx.org_code,
            "patient_id": enc.local_patient_id,
            "patient_name": enc.patient_name,
            "encounter_key": enc.encounter_key,
            "exam_code": f"X{self.rng.randint(100, 999)}" if defect == "unmapped_code" else exam.code,
            "exam_name": exam.name,
            "modality": exam.modality,
            "study_time": studied.strftime("%Y-%m-%d %H:%M:%S"),
            "检查所见": exam.abnormal_finding if abnormal else exam.normal_finding,
            "诊断意见": exam.abnormal_impression if abnormal else exam.normal_impression,
            "abnormal": abnormal,
            "reporting_doctor": f"R{self.rng.randint(1, 40):03d}",
            "verifying_doctor": f"R{self.rng.randint(41, 60):03d}",
            "report_time": reported.strftime("%Y-%m-%d %H:%M:%S"),
        }
        arrived = min(max(reported, studied), datetime.combine(studied.date(), time(23, 50)))  # synced by day's end
        self.files.write_bytes(self.ctx.out_dir / rel, flat_json(report).encode(),
                               arrived=arrived)  # fmt: skip

    def finish(self) -> dict[str, int]:
        return {"studies": self.studies, "reports": self.studies}


def make_writer(ctx: WriterContext) -> PacsWriter:
    return PacsWriter(ctx)
