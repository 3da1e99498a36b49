"""Synthetic public-health exports (基本公共卫生): health-record enrolment, hypertension and type-2 diabetes
follow-ups, child vaccinations and 65+ check-ups of a primary-care institution's residents, as weekly dated
CSV (UTF-8 or GBK) and Excel files with Chinese headers in the institution's front-end folder.

Each resident's public-health life (record, conditions, follow-up rhythm, vaccination and check-up days) is drawn
from the person and the institution alone, never from the window, so a daily increment continues the same
schedules, record numbers and ids; only the measured values, the row defects and the file defects depend on
the run's seed."""

from __future__ import annotations

import csv
import io
import random
import zlib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from synthetic.events import Encounter, WriterContext
from synthetic.files import FolderMaker, set_arrival
from synthetic.identity import wrong_check
from synthetic.population import DATA, Person
from synthetic.xlsx import workbook_bytes

KIND = "public_health"
EPOCH = date(2020, 1, 1)  # follow-up rhythms are phased against this day, so any window sees the same visits
BULK_ENROLMENT = (date(2010, 1, 1), date(2016, 12, 31))  # the national records campaign
CATCH_UP_FROM = date(2017, 1, 1)  # records created since then: `enrolled_during_window` per year
EXPECTED_RULE = {
    "malformed_csv": "PH-FILE-PARSE", "missing_required": "PH-REQUIRED", "out_of_range": "PH-VALUE-RANGE",
    "invalid_id_check": "PAT-ID-CHECK", "late_delivery": "TIMELINESS-CUTOFF", "duplicate_record": "PH-DUPLICATE",
}  # fmt: skip
REQUIRED_FIELD = {"health_record": "id_no", "hypertension_followup": "date", "diabetes_followup": "date",
                  "vaccination": "date", "elderly_checkup": "date"}  # fmt: skip
ENTITY_COUNTS = {"health_record": "health_records", "hypertension_followup": "hypertension_followups",
                 "diabetes_followup": "diabetes_followups", "vaccination": "vaccinations",
                 "elderly_checkup": "elderly_checkups"}  # fmt: skip
ID_PREFIX = {"hypertension_followup": "GY", "diabetes_followup": "TN", "vaccination": "JZ", "elderly_checkup": "TJ"}
# Defaults when synthetic/profiles.yaml lacks a key (profiles.yaml `defects.by_kind.public_health_*` wins).
ROW_DEFECT_RATES = {"missing_required": 0.003, "out_of_range": 0.003, "invalid_id_check": 0.002,
                    "duplicate_record": 0.003}  # fmt: skip
FILE_DEFECT_RATES = {"malformed_csv": 0.02, "late_delivery": 0.03}
SELF_CARE = ("可自理", "轻度依赖", "中度依赖", "不能自理")  # 老年人生活自理能力评估 (规范第三版)
MALFORMED_KINDS = ("column_count", "unterminated_quote", "bad_bytes")


@cache
def headers() -> dict[str, Any]:
    return yaml.safe_load((DATA / "public_health_headers.yaml").read_text(encoding="utf-8"))


@cache
def anchor_date() -> date:
    """The end of the base generation window (sizes.yaml): records dated after it belong to increments."""
    sizes = yaml.safe_load((Path(__file__).with_name("sizes.yaml")).read_text(encoding="utf-8"))
    return date.fromisoformat(str(sizes["end_date"]))


def _unit(*parts: object) -> float:
    """A stable draw in [0, 1) from its parts (the same in every run and process)."""
    return zlib.crc32("|".join(map(str, parts)).encode()) / 2**32


@dataclass
class Resident:
    person: Person
    record_no: str
    created: date
    doctor: str
    hypertension: bool = False
    diabetes: bool = False
    interval: int = 0  # days between planned follow-ups
    phase: int = 0  # offset of the first planned follow-up from EPOCH
    diabetes_lag: int = 0  # the diabetes visit follows the hypertension one by this many days

    def planned(self, k: int) -> date:
        return EPOCH + timedelta(days=self.phase + k * self.interval)

    def visit(self, k: int) -> date:
        jitter = int(_unit("SF", self.person.id_no, k) * 15) - 7
        return self.planned(k) + timedelta(days=jitter)


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
        by_kind = ctx.profiles.get("defects", {}).get("by_kind", {})
        rows = {**ROW_DEFECT_RATES, **by_kind.get("public_health_rows", {})}
        files = {**FILE_DEFECT_RATES, **by_kind.get("public_health_files", {})}
        self.row_rates = {k: float(v) * ctx.defect_multiplier for k, v in rows.items()}
        self.file_rates = {k: float(v) * ctx.defect_multiplier for k, v in files.items()}
        self.row_rate_total = sum(self.row_rates.values())
        # the institution's export system: the same for every run of this institution
        self.encoding = "gbk" if _unit("ENC", ctx.org_code) < self.care["gbk_share"] else "utf-8"
        self.files = FolderMaker()
        self._person_rng = random.Random()  # reseeded per resident (see _resident)
        self.pending: dict[str, Pending] = {name: Pending() for name in ENTITY_COUNTS}
        self.counts = dict.fromkeys(ENTITY_COUNTS.values(), 0)
        self.new_records: dict[date, list[Resident]] = {}
        self.vaccinations: dict[date, list[tuple[Resident, str, int]]] = {}
        self.checkups: dict[date, list[Resident]] = {}
        self.followups: dict[date, list[tuple[Resident, bool, int]]] = {}  # day → (resident, diabetes?, k)
        self._plan()

    # -- planning -------------------------------------------------------------------------------
    def _resident(self, n: int, person: Person) -> Resident | None:
        care, anchor = self.care, anchor_date()
        rng = self._person_rng
        rng.seed(f"PH|{self.ctx.org_code}|{person.id_no}")  # as random.Random(that string), without a new object
        if rng.random() >= care["enrolled"]:
            return None
        catch_up = (anchor - CATCH_UP_FROM).days / 365 * care["enrolled_during_window"]
        if rng.random() < catch_up:
            low, high = CATCH_UP_FROM, anchor + timedelta(days=365)
        else:
            low, high = BULK_ENROLMENT
        created = low + timedelta(days=rng.randrange((high - low).days + 1))
        if created < person.birth_date + timedelta(days=7):  # children: a record in their first two months
            created = person.birth_date + timedelta(days=rng.randint(7, 60))
        resident = Resident(person, f"{person.township_code}{n:08d}", created, f"Y{rng.randint(1, 30):03d}")
        age = _age(person, anchor)
        prevalence = next(p for limit, p in care["hypertension_by_age"] if age < limit) if age >= 18 else 0.0
        resident.hypertension = rng.random() < prevalence
        resident.diabetes = rng.random() < prevalence * care["diabetes_share_of_hypertension"]
        irregular = rng.random() < care["irregular_followup"]
        if resident.hypertension or resident.diabetes:
            resident.interval = rng.randint(120, 200) if irregular else rng.randint(84, 91)
            resident.phase = rng.randrange(resident.interval)
            resident.diabetes_lag = rng.randint(0, 10)
        return resident

    def _plan(self) -> None:
        start, end = self.ctx.start, self.ctx.end
        schedule = [(str(v), int(d), int(at)) for v, d, at in headers()["immunisation_schedule"]]
        stock: list[Resident] = []
        checked = min(1.0, self.care["elderly_checked_per_year"] / self.care["enrolled"])  # of all residents ≥65
        initial = start <= anchor_date()  # a base generation exports the records on hand first; increments don't
        for n, person in enumerate(self.ctx.people, start=1):
            if person.birth_date > end:
                continue
            r = self._resident(n, person)
            if r is None:
                continue
            if r.created < start:
                if initial:
                    stock.append(r)
            elif r.created <= end:
                self.new_records.setdefault(r.created, []).append(r)
            if r.interval:
                self._plan_followups(r)
            if (start - person.birth_date).days < 7 * 365:
                for vaccine, dose, at_days in schedule:
                    late = int(_unit("JZ", person.id_no, vaccine, dose) * 11)
                    due = person.birth_date + timedelta(days=at_days + late)
                    if start <= due <= end:
                        self.vaccinations.setdefault(due, []).append((r, vaccine, dose))
            if _age(person, end) >= 65:
                for year in range(start.year, end.year + 1):
                    if _unit("TJ", person.id_no, year) >= checked:
                        continue
                    day = date(year, 1, 1) + timedelta(days=int(_unit("TJD", person.id_no, year) * 365))
                    if start <= day <= end and _age(person, day) >= 65 and day >= r.created:
                        self.checkups.setdefault(day, []).append(r)
        for r in stock:
            self._queue("health_record", self._record_row(r), r)
        if stock:
            self._flush(start - timedelta(days=1))

    def _plan_followups(self, r: Resident) -> None:
        start, end = self.ctx.start, self.ctx.end
        first = max(0, (start - EPOCH).days - r.phase) // r.interval - 1
        k = max(0, first)
        while r.planned(k) <= end + timedelta(days=20):
            visit = r.visit(k)
            if visit >= r.created:
                if r.hypertension and start <= visit <= end:
                    self.followups.setdefault(visit, []).append((r, False, k))
                lagged = visit + timedelta(days=r.diabetes_lag)
                if r.diabetes and start <= lagged <= end:
                    self.followups.setdefault(lagged, []).append((r, True, k))
            k += 1

    # -- rows -----------------------------------------------------------------------------------
    @staticmethod
    def _row_id(dataset: str, ident: str, day: date) -> str:
        """The export system's service id: the day and a number stable for the person and service."""
        return f"{ID_PREFIX[dataset]}{day:%Y%m%d}{int(_unit(dataset, ident, day) * 10**8):08d}"

    def _record_row(self, r: Resident) -> dict[str, Any]:
        p = r.person
        return {"record_no": r.record_no, "id_no": p.id_no, "name": p.name, "sex": "男" if p.sex == "1" else "女",
                "birth_date": p.birth_date.isoformat(), "address": p.address, "phone": p.phone,
                "created": r.created.isoformat(), "org": self.ctx.name, "doctor": r.doctor}  # fmt: skip

    def _followup(self, r: Resident, day: date, diabetes: bool, k: int) -> dict[str, Any]:
        dataset = "diabetes_followup" if diabetes else "hypertension_followup"
        controlled = self.rng.random() < self.care["bp_controlled"]
        sbp = round(self.rng.gauss(128, 7) if controlled else self.rng.gauss(152, 9))
        dbp = round(self.rng.gauss(80, 5) if controlled else self.rng.gauss(94, 6))
        row = {"followup_no": self._row_id(dataset, r.person.id_no, day), "record_no": r.record_no,
               "id_no": r.person.id_no, "name": r.person.name, "date": day.isoformat(),
               "method": self.rng.choices(("门诊", "家庭", "电话"), weights=(60, 25, 15))[0],
               "sbp": sbp, "dbp": dbp,
               "medication": self.rng.choices(("规律", "间断", "不服药"), weights=(70, 22, 8))[0],
               "next_date": (r.planned(k + 1) + timedelta(days=r.diabetes_lag if diabetes else 0)).isoformat(),
               "doctor": r.doctor}  # fmt: skip
        if diabetes:
            fbg_ok = self.rng.random() < self.care["fbg_controlled"]
            row["fbg"] = round(self.rng.gauss(6.2, 0.5) if fbg_ok else self.rng.gauss(8.9, 1.4), 1)
        return row

    def _queue(self, dataset: str, row: dict[str, Any], r: Resident) -> None:
        self.pending[dataset].rows.append((row, r.person.person_id))

    # -- the day's events -----------------------------------------------------------------------
    def on_day(self, day: date, encounters: list[Encounter]) -> None:
        for r in self.new_records.pop(day, []):
            self._queue("health_record", self._record_row(r), r)
        for r, diabetes, k in self.followups.pop(day, []):
            dataset = "diabetes_followup" if diabetes else "hypertension_followup"
            self._queue(dataset, self._followup(r, day, diabetes, k), r)
        for r, vaccine, dose in self.vaccinations.pop(day, []):
            p = r.person
            self._queue("vaccination", {
                "vaccination_no": self._row_id("vaccination", f"{p.id_no}{vaccine}{dose}", day),
                "record_no": r.record_no, "id_no": p.id_no, "name": p.name, "birth_date": p.birth_date.isoformat(),
                "vaccine": vaccine, "dose": dose, "date": day.isoformat(),
                "lot": f"{day:%Y}{self.rng.randint(10000, 99999)}", "org": self.ctx.name}, r)  # fmt: skip
        for r in self.checkups.pop(day, []):
            p = r.person
            male = p.sex == "1"
            self._queue("elderly_checkup", {
                "checkup_no": self._row_id("elderly_checkup", p.id_no, day), "record_no": r.record_no, "id_no": p.id_no,
                "name": p.name, "date": day.isoformat(), "height": round(self.rng.gauss(166 if male else 155, 6), 1),
                "weight": round(self.rng.gauss(66 if male else 58, 9), 1), "sbp": round(self.rng.gauss(138, 15)),
                "dbp": round(self.rng.gauss(82, 9)), "fbg": round(max(3.5, self.rng.gauss(5.9, 1.2)), 1),
                "self_care": self.rng.choices(SELF_CARE, weights=(82, 12, 4, 2))[0],
            }, r)  # fmt: skip
        if day.weekday() == 6 or day == self.ctx.end:  # weekly export on Sundays (and at the end)
            self._flush(day)

    # -- files ----------------------------------------------------------------------------------
    def _flush(self, day: date) -> None:
        records: list[list[Any]] = []
        defects: list[list[Any]] = []
        org = self.ctx.org_code
        for dataset, pending in self.pending.items():
            if not pending.rows:
                continue
            spec = headers()[dataset]
            late = self.rng.random() < self.file_rates["late_delivery"]
            delivered = day + timedelta(days=self.rng.randint(2, 5)) if late else day
            suffix = "xlsx" if spec["format"] == "xlsx" else "csv"
            name = f"{spec['file']}_{delivered:%Y%m%d}.{suffix}"
            if (self.ctx.out_dir / name).exists():  # a second export dated the same day (a late file meets another)
                name = f"{spec['file']}_{delivered:%Y%m%d}_2.{suffix}"
            key_field = next(iter(spec["columns"]))
            rows: list[dict[str, Any]] = []
            for row, person_id in pending.rows:  # each row a dict of its own: defaced in place
                defect, field_name = self._row_defect(dataset, row)
                rows.append(row)
                records.append([org, "PH", dataset, name, row[key_field], person_id])
                if not defect:
                    continue
                key = row[key_field]
                if defect == "duplicate_record":  # the same service entered twice: a second id, same content
                    twin = dict(row)
                    if dataset == "health_record":
                        twin[key_field] = f"{row[key_field][:9]}{9 * 10**7 + int(_unit('DUP', key) * 10**7):08d}"
                    else:
                        twin[key_field] = self._row_id(dataset, f"DUP{key}", date.fromisoformat(key[2:10]))
                    rows.append(twin)
                    key = twin[key_field]
                    records.append([org, "PH", dataset, name, key, person_id])
                defects.append([org, KIND, name, key, defect, spec["columns"][field_name], EXPECTED_RULE[defect]])
            if late:
                defects.append([org, KIND, name, name, "late_delivery", "file", EXPECTED_RULE["late_delivery"]])
            self.files.ensure(self.ctx.out_dir)
            if suffix == "csv":
                data, broken_line = self._csv(spec, rows)
                if broken_line:
                    defects.append([org, KIND, name, f"{name}#{broken_line}", "malformed_csv", "row",
                                    EXPECTED_RULE["malformed_csv"]])  # fmt: skip
            else:
                data = self._xlsx(spec, rows)
            (self.ctx.out_dir / name).write_bytes(data)
            # exported on the evening of the week's last day; a late file comes in the morning days later
            set_arrival(self.ctx.out_dir / name, datetime.combine(delivered, time(9, 0) if late else time(21, 0)))
            self.counts[ENTITY_COUNTS[dataset]] += len(rows)
            pending.rows.clear()
        self.ctx.truth.records(records)
        self.ctx.truth.defects(defects)

    def _row_defect(self, dataset: str, row: dict[str, Any]) -> tuple[str, str]:
        """Maybe deface the row; returns (defect type, field) or ("", "")."""
        roll = self.rng.random()
        if roll >= self.row_rate_total:  # most rows: no defect
            return "", ""
        for name, rate in self.row_rates.items():
            if roll >= rate:
                roll -= rate
                continue
            if name == "missing_required":
                row[REQUIRED_FIELD[dataset]] = ""
                return name, REQUIRED_FIELD[dataset]
            if name == "out_of_range":
                choices = [f for f in ("sbp", "fbg") if f in row]
                if not choices:
                    return "", ""
                target = self.rng.choice(choices)
                row[target] = 400 if target == "sbp" else -1
                return name, target
            if name == "invalid_id_check":
                row["id_no"] = wrong_check(row["id_no"])
                return name, "id_no"
            key_field = next(iter(headers()[dataset]["columns"]))
            return name, key_field  # duplicate_record
        return "", ""

    def _csv(self, spec: dict[str, Any], rows: list[dict[str, Any]]) -> tuple[bytes, int]:
        """CSV bytes in the institution's encoding; possibly with one labelled broken line (its line number)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        columns = list(spec["columns"])
        writer.writerow(spec["columns"][c] for c in columns)
        writer.writerows([row.get(c, "") for c in columns] for row in rows)
        text = buffer.getvalue()
        if text.count("\r\n") < 2 or self.rng.random() >= self.file_rates["malformed_csv"]:  # (lines - 1) < 2
            return text.encode(self.encoding, errors="replace"), 0
        lines = [line.encode(self.encoding, errors="replace") for line in text.split("\r\n")]
        broken = self.rng.randint(2, len(lines) - 1)  # 1-based line number, never the header
        line, how = lines[broken - 1], self.rng.choice(MALFORMED_KINDS)
        if how == "column_count":  # a field lost its separator
            head, _, tail = line.rpartition(b",")
            line = head + tail
        elif how == "unterminated_quote":
            line = line.rsplit(b",", 3)[0] + ',"未闭合引号'.encode(self.encoding)
        else:  # bytes no decoder of either encoding accepts
            line = line[:10] + b"\xff\xfe\x80" + line[10:]
        lines[broken - 1] = line
        return b"\r\n".join(lines), broken

    def _xlsx(self, spec: dict[str, Any], rows: list[dict[str, Any]]) -> bytes:
        """An .xlsx with fixed metadata and zip timestamps, so the same seed gives the same bytes."""
        columns = list(spec["columns"])
        header = [spec["columns"][c] for c in columns]
        return workbook_bytes(spec["file"], self.ctx.name, header, [[row.get(c, "") for c in columns] for row in rows])

    def finish(self) -> dict[str, int]:
        return dict(self.counts)


def make_writer(ctx: WriterContext) -> PublicHealthWriter:
    return PublicHealthWriter(ctx)
