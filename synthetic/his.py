"""Synthetic HIS databases: outpatient/emergency registrations, inpatient stays and patient masters per
institution, written in the institution's vendor schema, with identity noise and labelled defects."""

from __future__ import annotations

import bisect
import csv
import itertools
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from synthetic import orders
from synthetic.draws import cumulative, pick
from synthetic.events import Encounter, SourceWriter
from synthetic.identity import to_legacy15, wrong_check
from synthetic.population import DATA, Person, given_chars
from synthetic.staff import staff_rows
from synthetic.writers import TableWriter

ETHNICITY_NAMES = {"01": "汉族", "02": "蒙古族", "03": "回族", "04": "藏族", "11": "满族"}
MARITAL_A = {"10": "未婚", "20": "已婚", "30": "丧偶", "40": "离婚"}
MARITAL_B = {"10": "S", "20": "M", "30": "W", "40": "D"}
INSURANCE_A = {"01": "职工医保", "02": "居民医保", "03": "新农合", "07": "自费"}
ADMIT_A = {"1": "急诊", "2": "门诊", "3": "转入"}
DISPOSITION_A = {"1": "医嘱离院", "2": "医嘱转院", "3": "转社区", "4": "非医嘱离院", "5": "死亡"}
SYSTEMS = {"vendor_a": "HIS-A", "vendor_b": "HIS-B"}
ROUTES, ROUTE_CUM = ("1", "2", "3"), cumulative((35, 60, 5))  # 入院途径: 急诊 / 门诊 / 转入
DISPOSITIONS, DISPOSITION_CUM = ("1", "2", "3", "4", "5"), cumulative((88, 4, 3, 4, 1))  # 离院方式
EXPECTED_RULE = {
    "missing_required": "ENC-START-TIME",
    "unmapped_code": "PAT-SEX-CODED",
    "invalid_id_check": "PAT-ID-CHECK",
    "sex_id_mismatch": "PAT-SEX-ID",
    "birth_id_mismatch": "PAT-BIRTH-ID",
    "discharge_before_admission": "ENC-DISCHARGE-ORDER",
    "discharge_without_admission": "ENC-START-TIME",
    "duplicate_record": "ENC-DUPLICATE",
    "late_delivery": "TIMELINESS-CUTOFF",
}


@dataclass(frozen=True)
class Diagnosis:
    icd10: str
    name: str
    local_code: str
    op_weight: float
    ip_weight: float


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    setting: str
    types: tuple[str, ...]


@cache
def diagnoses() -> tuple[Diagnosis, ...]:
    with (DATA / "diagnoses.csv").open(encoding="utf-8") as handle:
        return tuple(
            Diagnosis(r["icd10"], r["name"], r["local_code"], float(r["op_weight"]), float(r["ip_weight"]))
            for r in csv.DictReader(handle)
        )


@cache
def departments() -> tuple[Department, ...]:
    with (DATA / "departments.csv").open(encoding="utf-8") as handle:
        return tuple(
            Department(r["code"], r["name"], r["setting"], tuple(r["institution_types"].split("|")))
            for r in csv.DictReader(handle)
        )


@dataclass
class Truth:
    """Ground truth collected while generating: which person each source record is, and labelled defects."""

    records: Callable[[list[Any]], None]
    defects: Callable[[list[Any]], None]
    noise: Callable[[list[Any]], None] = lambda rows: None  # identity noise (not defects): truth/identity_noise.csv


@dataclass(frozen=True)
class Continuation:
    """An existing HIS to append days to: its patients (person → local id, recorded name) and next key number."""

    patients: dict[str, tuple[str, str]]
    next_seq: int


@dataclass
class HisCounts:
    patients: int = 0
    outpatient: int = 0
    inpatient: int = 0
    defects: dict[str, int] = field(default_factory=dict)
    next_seq: int = 1  # the next encounter key number (daily increments continue from here)


def _ts(value: datetime | None) -> str | None:
    """YYYY-MM-DD HH:MM:SS (isoformat is several times faster than strftime)."""
    return None if value is None else value.isoformat(" ", "seconds")


class _Pool:
    """Residents an institution serves, sampled with age-weighted probability (older people visit more)."""

    def __init__(self, people: list[Person], end: date) -> None:
        self.people = people
        weights = [1.0 + max(0, (end - p.birth_date).days // 365) / 25.0 for p in people]
        self.cum = list(itertools.accumulate(weights))

    def sample(self, rng: random.Random) -> Person:
        return self.people[bisect.bisect_left(self.cum, rng.random() * self.cum[-1])]


def _poisson_count(rng: random.Random, expected: float) -> int:
    """A count near `expected` (normal approximation, never negative)."""
    if expected <= 0:
        return 0
    return max(0, round(rng.gauss(expected, expected**0.5)))


def _typo(rng: random.Random, name: str) -> str:
    """The name with one given-name character replaced by a homophone (同音字) or a look-alike (形近字)."""
    chars = given_chars()
    subs = {**chars["lookalikes"], **chars["homophones"]}
    positions = [i for i, ch in enumerate(name) if i > 0 and ch in subs]
    if not positions:
        return name
    i = rng.choice(positions)
    return name[:i] + subs[name[i]] + name[i + 1 :]


@dataclass
class InstitutionPlan:
    org_code: str
    short: str
    type: str
    vendor: str
    beds: int
    physicians: int
    outpatient_expected: float
    inpatient_expected: float
    pool: _Pool
    defect_rates: dict[str, float]
    noise: dict[str, float]
    defect_multiplier: float = 1.0
    window_days: int = 1  # the period the expected volumes cover


def generate_institution(
    plan: InstitutionPlan,
    writer: TableWriter,
    truth: Truth,
    care: dict[str, Any],
    start: date,
    end: date,
    seed: int,
    listeners: Sequence[SourceWriter] = (),
    continuation: Continuation | None = None,
) -> HisCounts:
    """Generate and write one institution's HIS, streaming one day of visits at a time; each day's encounters
    are handed to `listeners` (the institution's lab, imaging and EMR writers). With a `continuation` the
    days are appended to an existing HIS (daily increments) instead of creating it."""
    rng = random.Random(seed)
    order_rng = random.Random(seed * 2 + 1)  # orders and fees draw apart, so they never shift the visits
    vendor = plan.vendor
    system = SYSTEMS[vendor]
    counts = HisCounts()
    days = (end - start).days + 1
    local_ids: dict[str, str] = {}
    names: dict[str, str] = {}
    patient_rows: dict[str, list[Any]] = {}
    if continuation:
        local_ids = {person: key for person, (key, _) in continuation.patients.items()}
        names = {person: name for person, (_, name) in continuation.patients.items()}
    rates = plan.defect_rates
    emergency_share = float(care["emergency_share"].get(plan.type, 0))
    los_mean = float(care["mean_length_of_stay"].get(plan.type, 0))
    op_depts = [d for d in departments() if d.setting == "op" and plan.type in d.types]
    em_depts = [d for d in departments() if d.setting == "em" and plan.type in d.types] or op_depts
    ip_depts = [d for d in departments() if d.setting == "ip" and plan.type in d.types]
    dx = diagnoses()
    op_dx_cum = cumulative(d.op_weight for d in dx)
    ip_dx_cum = cumulative(d.ip_weight for d in dx)
    if continuation:
        writer.open(vendor)
    else:
        writer.create(vendor)
        _write_code_table(writer, vendor)
        roster = op_depts + ip_depts or list(departments())
        writer.insert("GY_YGXX" if vendor == "vendor_a" else "staff",
                      staff_rows(vendor, plan.physicians, roster, start, seed))  # fmt: skip
    defects: list[list[Any]] = []
    records: list[list[Any]] = []
    noise_rows: list[list[Any]] = []
    seq = itertools.count(continuation.next_seq if continuation else 1)
    patient_table = "GY_BRXX" if vendor == "vendor_a" else "patient"

    def label(table: str, key: str, defect: str, column: str) -> None:
        defects.append([plan.org_code, "his", table, key, defect, column, EXPECTED_RULE[defect]])
        counts.defects[defect] = counts.defects.get(defect, 0) + 1

    def local_id(person: Person, at: datetime) -> str:
        if person.person_id not in local_ids:
            n = len(local_ids) + 1
            key = f"BR{n:08d}" if vendor == "vendor_a" else f"{10**9 + n}"
            local_ids[person.person_id] = key

            def noted(kind: str, column: str) -> None:
                noise_rows.append([plan.org_code, patient_table, key, person.person_id, kind, column])

            patient_rows[person.person_id] = _patient_row(plan, person, key, rng, label, at, end, noted)
            names[person.person_id] = patient_rows[person.person_id][1]
            records.append([plan.org_code, system, "patient", patient_table, key, person.person_id])
        return local_ids[person.person_id]

    def event(person: Person, key: str, setting: str, at: datetime, until: datetime | None, dept: Department,
              doctor: str, diag: Diagnosis) -> Encounter:  # fmt: skip
        return Encounter(plan.org_code, plan.short, plan.type, system, key, local_ids[person.person_id], person,
                         names[person.person_id], setting, at, until, dept.code, dept.name, doctor, diag.icd10,
                         diag.name)  # fmt: skip

    def update_time(at: datetime, table: str, key: str, judged: bool = True) -> datetime:
        if rng.random() < rates["late_delivery"]:
            if judged:  # cancelled rows are not judged
                label(table, key, "late_delivery", "GXSJ" if vendor == "vendor_a" else "last_modified")
            return datetime.combine(at.date() + timedelta(days=1), datetime.min.time()) + timedelta(
                hours=rng.randint(1, 20)
            )
        if rng.random() < care["updated_later"] and (end - at.date()).days >= 2:
            # a later edit lands two or more days on (never in the next day's window, which is late delivery)
            return at + timedelta(days=rng.randint(2, min(20, (end - at.date()).days)))
        # entered within 90 minutes, and by the day's 24:00 cut-off (only labelled late rows miss it)
        return min(at + timedelta(minutes=rng.randint(1, 90)), datetime.combine(at.date(), datetime.max.time()))

    op_per_day = plan.outpatient_expected / plan.window_days
    ip_per_day = plan.inpatient_expected / plan.window_days
    for offset in range(days):
        day = start + timedelta(days=offset)
        midnight = datetime.combine(day, datetime.min.time())
        visits: list[list[Any]] = []
        stays: list[list[Any]] = []
        events: list[Encounter] = []
        order_rows = orders.OrderRows({})
        for _ in range(_poisson_count(rng, op_per_day)):
            person = plan.pool.sample(rng)
            emergency = rng.random() < emergency_share
            hour = rng.randint(0, 23) if emergency else rng.choice((8, 8, 9, 9, 9, 10, 10, 11, 14, 15, 16))
            at = midnight + timedelta(hours=hour, minutes=rng.randint(0, 59))
            dept = rng.choice(em_depts if emergency else op_depts)
            diag = pick(rng, dx, op_dx_cum)
            n = next(seq)
            key = f"GH{n:09d}" if vendor == "vendor_a" else f"V{plan.short}{n:09d}"
            table = "MZ_GHXX" if vendor == "vendor_a" else "visit"
            pid = local_id(person, at)
            start_value: datetime | None = at
            deleted = "1" if rng.random() < care["cancelled_registration"] else "0"
            if deleted == "0" and rng.random() < rates["missing_required"]:  # cancelled rows are not judged
                start_value = None
                label(table, key, "missing_required", "GHSJ" if vendor == "vendor_a" else "visit_time")
            updated = update_time(at, table, key, judged=deleted == "0")
            doctor = f"D{rng.randint(1, max(1, plan.physicians)):04d}"
            if vendor == "vendor_a":
                row = [key, pid, "2" if emergency else "1", _ts(start_value), dept.code, dept.name, doctor,
                       diag.local_code, diag.name, _ts(updated), deleted]  # fmt: skip
            else:
                row = [key, pid, "EM" if emergency else "OP", _ts(start_value), None, dept.code, dept.name, doctor,
                       None, None, None, diag.icd10, diag.name, _ts(updated), deleted]  # fmt: skip
            visits.append(row)
            records.append([plan.org_code, system, "encounter", table, key, person.person_id])
            orders.outpatient(order_rows, vendor, order_rng, key, pid, diag.icd10, at, doctor, updated, deleted,
                              lab=order_rng.random() < 0.35, imaging=order_rng.random() < 0.08)  # fmt: skip
            if deleted == "0":
                events.append(event(person, key, "em" if emergency else "op", at, None, dept, doctor, diag))
            if rng.random() < rates["duplicate_record"]:
                dup = f"{key}D"
                dup_row = [dup, *row[1:]]
                visits.append(dup_row)
                records.append([plan.org_code, system, "encounter", table, dup, person.person_id])
                label(table, dup, "duplicate_record", table)
                if start_value is None:  # the copy carries the original's missing time too
                    label(table, dup, "missing_required", "GHSJ" if vendor == "vendor_a" else "visit_time")
        if ip_depts:
            for _ in range(_poisson_count(rng, ip_per_day)):
                person = plan.pool.sample(rng)
                admitted = midnight + timedelta(hours=rng.randint(0, 23), minutes=rng.randint(0, 59))
                los = max(1, round(rng.expovariate(1 / los_mean))) if los_mean else 1
                discharged: datetime | None = admitted + timedelta(days=los, hours=rng.randint(-3, 5))
                if discharged and discharged.date() > end:
                    discharged = None  # still in hospital at the end of the window
                n = next(seq)
                key = f"ZY{n:09d}" if vendor == "vendor_a" else f"I{plan.short}{n:09d}"
                table = "ZY_BAXX" if vendor == "vendor_a" else "visit"
                admit_value: datetime | None = admitted
                if discharged is not None and rng.random() < rates["discharge_before_admission"]:
                    discharged = admitted - timedelta(days=rng.randint(1, 3))
                    label(
                        table, key, "discharge_before_admission", "CYSJ" if vendor == "vendor_a" else "discharge_time"
                    )
                elif discharged is not None and rng.random() < rates["discharge_without_admission"]:
                    admit_value = None
                    label(table, key, "discharge_without_admission", "RYSJ" if vendor == "vendor_a" else "visit_time")
                dept = rng.choice(ip_depts)
                diag = pick(rng, dx, ip_dx_cum)
                pid = local_id(person, admitted)
                route = pick(rng, ROUTES, ROUTE_CUM)
                disposition = pick(rng, DISPOSITIONS, DISPOSITION_CUM)
                updated = update_time(discharged or admitted, table, key)
                doctor = f"D{rng.randint(1, max(1, plan.physicians)):04d}"
                bed = f"{rng.randint(1, max(1, plan.beds)):03d}"
                if vendor == "vendor_a":
                    row = [key, pid, _ts(admit_value), _ts(discharged), dept.code, dept.name, doctor, bed,
                           ADMIT_A[route], DISPOSITION_A[disposition] if discharged else None, diag.local_code,
                           diag.name, _ts(updated), "0"]  # fmt: skip
                    stays.append(row)
                else:
                    row = [key, pid, "IP", _ts(admit_value), _ts(discharged), dept.code, dept.name, doctor, bed,
                           route, disposition if discharged else None, diag.icd10, diag.name, _ts(updated),
                           "0"]  # fmt: skip
                    visits.append(row)
                records.append([plan.org_code, system, "encounter", table, key, person.person_id])
                orders.inpatient(order_rows, vendor, order_rng, key, pid, diag.icd10, admitted, discharged, doctor,
                                 updated, datetime.combine(end, datetime.max.time()))  # fmt: skip
                true_end = None if discharged is None else max(discharged, admitted + timedelta(hours=4))
                events.append(event(person, key, "ip", admitted, true_end, dept, doctor, diag))
                counts.inpatient += 1
        counts.outpatient += sum(1 for v in visits if v[2] != "IP")
        if vendor == "vendor_a":
            writer.insert("MZ_GHXX", visits)
            writer.insert("ZY_BAXX", stays)
        else:
            writer.insert("visit", visits)
        for order_table, order_table_rows in order_rows.tables.items():
            writer.insert(order_table, order_table_rows)
        truth.records(records)
        truth.defects(defects)
        truth.noise(noise_rows)
        records, defects, noise_rows = [], [], []
        for listener in listeners:
            listener.on_day(day, events)

    # People registered in the master index without a visit in the window.
    extra = 0 if continuation else _poisson_count(rng, len(local_ids) * care["registered_without_visit"])
    for _ in range(extra):
        person = plan.pool.sample(rng)
        local_id(person, datetime.combine(start, datetime.min.time()) + timedelta(days=rng.randrange(days), hours=9))
    patients = list(patient_rows.values())
    writer.insert(patient_table, patients)
    truth.records(records)
    truth.defects(defects)
    truth.noise(noise_rows)
    counts.patients = len(patients)
    counts.next_seq = next(seq)
    writer.finish()
    return counts


def _patient_row(
    plan: InstitutionPlan,
    p: Person,
    key: str,
    rng: random.Random,
    label: Callable[[str, str, str, str], None],
    first_seen: datetime,
    end: date,
    noted: Callable[[str, str], None] = lambda kind, column: None,
) -> list[Any]:
    """The patient master row as this institution recorded the person: identity noise and labelled defects."""
    vendor = plan.vendor
    table = "GY_BRXX" if vendor == "vendor_a" else "patient"
    rates, noise = plan.defect_rates, plan.noise
    name, sex, birth, id_no, phone = p.name, p.sex, p.birth_date, p.id_no, p.phone
    id_type: str | None = "1" if vendor == "vendor_a" else "ID"
    a = vendor == "vendor_a"
    if rng.random() < noise["name_typo"] and (typo := _typo(rng, name)) != name:
        name = typo
        noted("name_typo", "BRXM" if a else "patient_name")
    if rng.random() < noise["phone_changed"]:
        phone = phone[:3] + f"{rng.randrange(10**8):08d}"
        noted("phone_changed", "LXDH" if a else "mobile")
    address = p.address
    if rng.random() < noise["address_changed"]:  # moved within the township: another village
        village = address[address.index(p.township_name) + len(p.township_name) :].split("村")[0]
        moved = str(rng.choice([v for v in range(1, 31) if str(v) != village]))
        address = address.replace(f"{p.township_name}{village}村", f"{p.township_name}{moved}村", 1)
        noted("address_changed", "JTDZ" if a else "address")
    if rng.random() < noise["missing_id"]:
        id_no, id_type = None, None
        noted("missing_id", "ZJHM" if a else "id_card_no")
    elif rng.random() < noise["legacy_15_digit_id"]:
        id_no = to_legacy15(id_no)
        noted("legacy_15_digit_id", "ZJHM" if a else "id_card_no")
    elif rng.random() < noise["other_document"]:
        id_type, id_no = ("2", id_no) if rng.random() < 0.5 else ("3", f"E{rng.randrange(10**8):08d}")
        if not a:
            id_type = {"2": "HK", "3": "PP"}[id_type]
        noted("other_document", "ZJLX" if a else "id_card_type")
    elif rng.random() < rates["invalid_id_check"]:
        id_no = wrong_check(id_no)
        label(table, key, "invalid_id_check", "ZJHM" if vendor == "vendor_a" else "id_card_no")
    sex_value = ("男" if sex == "1" else "女") if vendor == "vendor_a" else ("M" if sex == "1" else "F")
    if rng.random() < rates["unmapped_code"]:
        sex_value = "不详" if vendor == "vendor_a" else "X"
        label(table, key, "unmapped_code", "XB" if vendor == "vendor_a" else "gender")
    elif id_no and len(id_no) == 18 and rng.random() < rates["sex_id_mismatch"]:
        sex_value = ("女" if sex == "1" else "男") if vendor == "vendor_a" else ("F" if sex == "1" else "M")
        label(table, key, "sex_id_mismatch", "XB" if vendor == "vendor_a" else "gender")
    if id_no and len(id_no) == 18 and rng.random() < rates["birth_id_mismatch"]:
        birth = birth + timedelta(days=rng.randint(1, 400))
        label(table, key, "birth_id_mismatch", "CSRQ" if vendor == "vendor_a" else "birthday")
    if birth.day <= 12 and birth.day != birth.month and rng.random() < noise["day_month_swap"]:
        birth = birth.replace(month=birth.day, day=birth.month)
        noted("day_month_swap", "CSRQ" if a else "birthday")
    registered = first_seen - timedelta(minutes=rng.randint(1, 30))
    updated = registered
    if rng.random() < 0.08:
        updated = min(registered + timedelta(days=rng.randint(1, 30)), datetime.combine(end, datetime.min.time()))
    if vendor == "vendor_a":
        return [key, name, sex_value, f"{birth:%Y%m%d}", id_type, id_no, phone, address,
                ETHNICITY_NAMES.get(p.ethnicity, "汉族"), MARITAL_A[p.marital], INSURANCE_A[p.insurance],
                _ts(updated), "0"]  # fmt: skip
    return [key, name, sex_value, birth.isoformat(), id_type, id_no, phone, address, p.ethnicity,
            MARITAL_B[p.marital], p.insurance, _ts(updated), "0"]  # fmt: skip


def _write_code_table(writer: TableWriter, vendor: str) -> None:
    if vendor == "vendor_a":
        rows = [["ZD", d.local_code, d.name] for d in diagnoses()]
        rows += [["KS", d.code, d.name] for d in departments()]
        writer.insert("GY_DMZD", rows)
    else:
        rows = [["department", d.code, d.name] for d in departments()]
        rows += [["visit_type", code, name] for code, name in (("OP", "门诊"), ("EM", "急诊"), ("IP", "住院"))]
        writer.insert("code_dict", rows)


def plan_institutions(
    config: Any, people: list[Person], days: int, profiles: dict[str, Any], end: date
) -> list[InstitutionPlan]:
    """How many visits and stays each institution gets, and whom it serves."""
    care, noise_cfg, defect_cfg = profiles["care"], profiles["identity_noise"], profiles["defects"]
    his = config.with_source("his")
    by_town: dict[str, list[Person]] = {}
    for p in people:
        by_town.setdefault(p.township_code, []).append(p)
    hospitals = [i for i in his if i.type == "二级医院"]
    hospital_beds = sum(i.beds for i in hospitals) or 1
    years = days / 365
    total = len(people)
    everyone = _Pool(people, end)
    plans = []
    for inst in his:
        if inst.type == "二级医院":
            pool = everyone
            share = inst.beds / hospital_beds
            op = total * care["outpatient_per_person_year"] * years * (1 - care["primary_care_share"]) * share
            ip = total * care["inpatient_per_person_year"] * years * care["inpatient_hospital_share"] * share
        else:
            residents = by_town.get(inst.township, [])
            peers = [i for i in his if i.type != "二级医院" and i.township == inst.township]
            pool = _Pool(residents or people[:1], end)
            op = len(residents) * care["outpatient_per_person_year"] * years * care["primary_care_share"] / len(peers)
            ip = len(residents) * care["inpatient_per_person_year"] * years * (1 - care["inpatient_hospital_share"])
            ip /= len(peers)
        multiplier = defect_cfg["type_multiplier"].get(inst.type, 1.0) * defect_cfg["institution_multiplier"].get(
            inst.short, 1.0
        )
        plans.append(
            InstitutionPlan(
                org_code=inst.org_code,
                short=inst.short,
                type=inst.type,
                vendor=str(inst.sources["his"].get("vendor")),
                beds=inst.beds,
                physicians=inst.physicians,
                outpatient_expected=op,
                inpatient_expected=ip,
                pool=pool,
                defect_rates={k: float(v) * multiplier for k, v in defect_cfg["defaults"].items()},
                defect_multiplier=multiplier,
                window_days=days,
                noise={
                    "name_typo": float(noise_cfg["name_typo"]),
                    "missing_id": float(noise_cfg["missing_id"].get(inst.type, 0.02)),
                    "legacy_15_digit_id": float(noise_cfg["legacy_15_digit_id"]),
                    "phone_changed": float(noise_cfg["phone_changed"]),
                    "day_month_swap": float(noise_cfg["day_month_swap"]),
                    "other_document": float(noise_cfg["other_document"]),
                    "address_changed": float(noise_cfg["address_changed"]),
                },
            )
        )
    return plans


__all__ = ["HisCounts", "InstitutionPlan", "Path", "Truth", "generate_institution", "plan_institutions"]
