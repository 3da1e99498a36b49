"""Synthetic public-health exports (基本公共卫生): health-record enrolment, hypertension and type-2 diabetes
follow-ups, child vaccinations and 65+ check-ups of a primary-care institution's residents, as weekly dated
CSV (UTF-8 or GBK) and Excel files with Chinese headers in the institution's front-end folder."""

from __future__ import annotations

import csv
import io
import random
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any

import yaml
from openpyxl import Workbook

from synthetic.events import Encounter, WriterContext
from synthetic.identity import wrong_check
from synthetic.population import DATA, Person

KIND = "public_health"
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
EXPECTED_RULE = {
    "malformed_csv": "PH-FILE-PARSE", "missing_required": "PH-REQUIRED", "out_of_range": "PH-VALUE-RANGE",
    "invalid_id_check": "PAT-ID-CHECK", "late_delivery": "TIMELINESS-CUTOFF", "duplicate_record": "PH-DUPLICATE",
}  # fmt: skip
REQUIRED_FIELD = {"health_record": "id_no", "hypertension_followup": "date", "diabetes_followup": "date",
                  "vaccination": "date", "elderly_checkup": "date"}  # fmt: skip
ENTITY_COUNTS = {"health_record": "health_records", "hypertension_followup": "hypertension_followups",
                 "diabetes_followup": "diabetes_followups", "vaccination": "vaccinations",
                 "elderly_checkup": "elderly_checkups"}  # fmt: skip


@cache
def headers() -> dict[str, Any]:
    return yaml.safe_load((DATA / "public_health_headers.yaml").read_text(encoding="utf-8"))


@dataclass
class Resident:
    person: Person
    record_no: str
    created: date
    doctor: str
    hypertension: bool = False
    diabetes: bool = False
    irregular: bool = False


@dataclass
class Pending:
    """Rows of one data set waiting for their weekly file."""

    rows: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (row, person id)


def _age(person: Person, on: date) -> int:
    return (on - person.birth_date).days // 365


class PublicHealthWriter:
    kind = KIND

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx
        self.rng = random.Random(ctx.seed)
        self.care = ctx.profiles["public_health"]
        rates = ctx.profiles["defects"]["by_kind"]
        self.encoding = "gbk" if self.rng.random() < self.care["gbk_share"] else "utf-8"
        self.row_rates = {k: v * ctx.defect_multiplier for k, v in rates["public_health_rows"].items()}
        self.file_rates = {k: v * ctx.defect_multiplier for k, v in rates["public_health_files"].items()}
        self.pending: dict[str, Pending] = {name: Pending() for name in ENTITY_COUNTS}
        self.counts = dict.fromkeys(ENTITY_COUNTS.values(), 0)
        self.seq = 0
        self.residents: list[Resident] = []
        self.new_records: dict[date, list[Resident]] = {}
        self.vaccinations: dict[date, list[tuple[Resident, str, int]]] = {}
        self.checkups: dict[date, list[Resident]] = {}
        self.followups: dict[date, list[tuple[Resident, bool]]] = {}  # day → (resident, diabetes visit?)
        self._plan()

    # -- planning -------------------------------------------------------------------------------
    def _plan(self) -> None:
        start, end = self.ctx.start, self.ctx.end
        days = (end - start).days + 1
        schedule = headers()["immunisation_schedule"]
        care = self.care
        for n, person in enumerate(self.ctx.people, start=1):
            if self.rng.random() >= care["enrolled"]:
                continue
            during = self.rng.random() < care["enrolled_during_window"]
            if during:
                created = start + timedelta(days=self.rng.randrange(days))
            else:
                earliest = max(person.birth_date, date(2010, 1, 1))
                created = earliest + timedelta(days=self.rng.randrange(max(1, (start - earliest).days)))
            resident = Resident(person, f"{person.township_code}{n:08d}", created,
                                f"Y{self.rng.randint(1, 30):03d}")  # fmt: skip
            age = _age(person, start)
            prevalence = next(p for limit, p in care["hypertension_by_age"] if age < limit) if age >= 18 else 0.0
            if self.rng.random() < prevalence:
                resident.hypertension = True
                resident.diabetes = self.rng.random() < care["diabetes_share_of_hypertension"]
                resident.irregular = self.rng.random() < care["irregular_followup"]
                first = start + timedelta(days=self.rng.randrange(90))
                self.followups.setdefault(first, []).append((resident, False))
                if resident.diabetes:
                    second = first + timedelta(days=self.rng.randint(0, 10))
                    self.followups.setdefault(second, []).append((resident, True))
            if during:
                self.new_records.setdefault(created, []).append(resident)
            self.residents.append(resident)
            for vaccine, dose, at_days in schedule:
                due = person.birth_date + timedelta(days=int(at_days) + self.rng.randint(0, 10))
                if start <= due <= end:
                    self.vaccinations.setdefault(due, []).append((resident, str(vaccine), int(dose)))
            if age >= 65 and self.rng.random() < care["elderly_checked_per_year"] * days / 365:
                self.checkups.setdefault(start + timedelta(days=self.rng.randrange(days)), []).append(resident)
        # the initial stock export: every record created before the window
        for resident in self.residents:
            if resident.created < start:
                self._queue("health_record", self._record_row(resident), resident)
        self._flush(start - timedelta(days=1))

    # -- rows -----------------------------------------------------------------------------------
    def _next_id(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.ctx.short}{self.seq:08d}"

    def _record_row(self, r: Resident) -> dict[str, Any]:
        p = r.person
        return {"record_no": r.record_no, "id_no": p.id_no, "name": p.name, "sex": "男" if p.sex == "1" else "女",
                "birth_date": p.birth_date.isoformat(), "address": p.address, "phone": p.phone,
                "created": r.created.isoformat(), "org": self.ctx.name, "doctor": r.doctor}  # fmt: skip

    def _followup(self, r: Resident, day: date, diabetes: bool) -> dict[str, Any]:
        controlled = self.rng.random() < self.care["bp_controlled"]
        sbp = round(self.rng.gauss(128, 7) if controlled else self.rng.gauss(152, 9))
        dbp = round(self.rng.gauss(80, 5) if controlled else self.rng.gauss(94, 6))
        interval = self.rng.randint(120, 200) if r.irregular else self.rng.randint(80, 95)
        row = {"followup_no": self._next_id("SF"), "record_no": r.record_no, "id_no": r.person.id_no,
               "name": r.person.name, "date": day.isoformat(),
               "method": self.rng.choices(("门诊", "家庭", "电话"), weights=(60, 25, 15))[0],
               "sbp": sbp, "dbp": dbp, "medication": self.rng.choice(("规律", "间断", "不服药")),
               "next_date": (day + timedelta(days=interval)).isoformat(), "doctor": r.doctor}  # fmt: skip
        if diabetes:
            fbg_ok = self.rng.random() < self.care["fbg_controlled"]
            row["fbg"] = round(self.rng.gauss(6.2, 0.5) if fbg_ok else self.rng.gauss(8.9, 1.4), 1)
        self.followups.setdefault(day + timedelta(days=interval), []).append((r, diabetes))
        return row

    def _queue(self, dataset: str, row: dict[str, Any], r: Resident) -> None:
        self.pending[dataset].rows.append((row, r.person.person_id))

    # -- the day's events -----------------------------------------------------------------------
    def on_day(self, day: date, encounters: list[Encounter]) -> None:
        for r in self.new_records.pop(day, []):
            self._queue("health_record", self._record_row(r), r)
        for r, diabetes in self.followups.pop(day, []):
            dataset = "diabetes_followup" if diabetes else "hypertension_followup"
            self._queue(dataset, self._followup(r, day, diabetes=diabetes), r)
        for r, vaccine, dose in self.vaccinations.pop(day, []):
            p = r.person
            self._queue("vaccination", {
                "vaccination_no": self._next_id("JZ"), "record_no": r.record_no, "id_no": p.id_no, "name": p.name,
                "birth_date": p.birth_date.isoformat(), "vaccine": vaccine, "dose": dose, "date": day.isoformat(),
                "lot": f"{day:%Y}{self.rng.randint(10000, 99999)}", "org": self.ctx.name}, r)  # fmt: skip
        for r in self.checkups.pop(day, []):
            p = r.person
            self._queue("elderly_checkup", {
                "checkup_no": self._next_id("TJ"), "record_no": r.record_no, "id_no": p.id_no, "name": p.name,
                "date": day.isoformat(), "height": round(self.rng.gauss(160, 8), 1),
                "weight": round(self.rng.gauss(62, 10), 1), "sbp": round(self.rng.gauss(138, 15)),
                "dbp": round(self.rng.gauss(84, 9)), "fbg": round(self.rng.gauss(5.9, 1.2), 1),
                "self_care": self.rng.choices(("可自理", "轻度依赖", "中度依赖"), weights=(85, 12, 3))[0],
            }, r)  # fmt: skip
        if day.weekday() == 6 or day == self.ctx.end:  # weekly export on Sundays (and at the end)
            self._flush(day)

    # -- files ----------------------------------------------------------------------------------
    def _flush(self, day: date) -> None:
        records: list[list[Any]] = []
        defects: list[list[Any]] = []
        for dataset, pending in self.pending.items():
            if not pending.rows:
                continue
            spec = headers()[dataset]
            delivered = day
            late = self.rng.random() < self.file_rates["late_delivery"]
            if late:
                delivered = day + timedelta(days=self.rng.randint(2, 5))
            suffix = "xlsx" if spec["format"] == "xlsx" else "csv"
            name = f"{spec['file']}_{delivered:%Y%m%d}.{suffix}"
            if (
                self.ctx.out_dir / name
            ).exists():  # a second export dated the same day (a late file meets a regular one)
                name = f"{spec['file']}_{delivered:%Y%m%d}_2.{suffix}"
            rel = name
            key_field = next(iter(spec["columns"]))
            rows: list[dict[str, Any]] = []
            for row, person_id in pending.rows:
                row = dict(row)
                defect = self._row_defect(dataset, row)
                rows.append(row)
                records.append([self.ctx.org_code, "PH", dataset, rel, row[key_field], person_id])
                if defect:
                    field_name = {"missing_required": REQUIRED_FIELD[dataset], "invalid_id_check": "id_no",
                                  "out_of_range": "sbp" if "sbp" in row else "height",
                                  "duplicate_record": key_field}[defect]  # fmt: skip
                    defects.append([self.ctx.org_code, KIND, rel, row[key_field], defect,
                                    spec["columns"][field_name], EXPECTED_RULE[defect]])  # fmt: skip
                    if defect == "duplicate_record":
                        twin = dict(row)
                        twin[key_field] = f"{row[key_field]}D"
                        rows.append(twin)
                        records.append([self.ctx.org_code, "PH", dataset, rel, twin[key_field], person_id])
                        defects[-1][3] = twin[key_field]
            if late:
                defects.append([self.ctx.org_code, KIND, rel, rel, "late_delivery", "file",
                                EXPECTED_RULE["late_delivery"]])  # fmt: skip
            self.ctx.out_dir.mkdir(parents=True, exist_ok=True)
            target = self.ctx.out_dir / name
            if suffix == "csv":
                data, broken_line = self._csv(spec, rows)
                if broken_line:
                    defects.append([self.ctx.org_code, KIND, rel, f"{rel}#{broken_line}", "malformed_csv", "row",
                                    EXPECTED_RULE["malformed_csv"]])  # fmt: skip
            else:
                data = self._xlsx(spec, rows)
            target.write_bytes(data)
            self.counts[ENTITY_COUNTS[dataset]] += len(pending.rows)
            pending.rows.clear()
        self.ctx.truth.records(records)
        self.ctx.truth.defects(defects)

    def _row_defect(self, dataset: str, row: dict[str, Any]) -> str:
        roll = self.rng.random()
        for name, rate in self.row_rates.items():
            if roll < rate:
                if name == "missing_required":
                    row[REQUIRED_FIELD[dataset]] = ""
                elif name == "out_of_range":
                    if "sbp" in row:
                        row["sbp"] = 400
                    elif "height" in row:
                        row["height"] = -1
                    else:
                        return ""
                elif name == "invalid_id_check":
                    if not row.get("id_no"):
                        return ""
                    row["id_no"] = wrong_check(row["id_no"])
                return name
            roll -= rate
        return ""

    def _csv(self, spec: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[bytes, int]:
        """CSV bytes in the institution's encoding; possibly with one labelled broken line (its line number)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        columns = list(spec["columns"])
        writer.writerow(spec["columns"][c] for c in columns)
        broken = 0
        for row in rows:
            writer.writerow(row.get(c, "") for c in columns)
        lines = buffer.getvalue().split("\r\n")
        if len(lines) > 2 and self.rng.random() < self.file_rates["malformed_csv"]:
            broken = self.rng.randint(2, len(lines) - 1)  # 1-based line number, never the header
            lines[broken - 1] = lines[broken - 1].rsplit(",", 3)[0] + ',"未闭合引号'
        text = "\r\n".join(lines)
        return text.encode(self.encoding, errors="replace"), broken

    def _xlsx(self, spec: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
        """An .xlsx with fixed metadata and zip timestamps, so the same seed gives the same bytes."""
        workbook = Workbook()
        sheet = workbook.active
        sheet.title = spec["file"]
        columns = list(spec["columns"])
        sheet.append([spec["columns"][c] for c in columns])
        for row in rows:
            sheet.append([row.get(c, "") for c in columns])
        fixed = datetime(2026, 1, 1)
        workbook.properties.created = workbook.properties.modified = fixed
        workbook.properties.creator = self.ctx.name
        raw = io.BytesIO()
        workbook.save(raw)
        source = zipfile.ZipFile(io.BytesIO(raw.getvalue()))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
            for item in sorted(source.infolist(), key=lambda i: i.filename):
                info = zipfile.ZipInfo(item.filename, date_time=(2026, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                content = source.read(item.filename)
                if item.filename == "docProps/core.xml":  # openpyxl stamps the save time here
                    content = MODIFIED.sub(b"\\g<1>2026-01-01T00:00:00Z\\g<2>", content)
                target.writestr(info, content)
        return out.getvalue()

    def finish(self) -> dict[str, int]:
        return dict(self.counts)


def make_writer(ctx: WriterContext) -> PublicHealthWriter:
    return PublicHealthWriter(ctx)
