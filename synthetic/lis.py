"""Synthetic LIS: lab orders and results for the day's encounters as HL7 v2.5 ORU^R01 messages (UTF-8),
written as daily HL7 batch files (FHS/BHS … BTS/FTS) in the institution's LIS drop folder."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache

from synthetic.events import Encounter, WriterContext
from synthetic.files import FolderMaker, set_arrival
from synthetic.population import DATA

KIND = "lis"
MESSAGES_PER_FILE = 200
PRIMARY_CARE_FACTOR = 0.5
# Panels a diagnosis (ICD-10 prefix) makes likely, and how it shifts results (item → mean, sd when ill).
PANELS_BY_DIAGNOSIS = {
    "E11": ["P03", "P04", "P02"], "I10": ["P02", "P05", "P06"], "E78": ["P05"], "I25": ["P05", "P08", "P01"],
    "I63": ["P05", "P08", "P01", "P09"], "I50": ["P02", "P06", "P01"], "J18": ["P01", "P07"],
    "J20": ["P01", "P07"], "J06": ["P01"], "J44": ["P01", "P07", "P06"], "N18": ["P02", "P06", "P01"],
    "N39": ["P01", "P07"], "K35": ["P01", "P07", "P08"], "K80": ["P01", "P02"], "O80": ["P01", "P08"],
    "S72": ["P01", "P08"], "C34": ["P01", "P02"], "A09": ["P01", "P06"],
}  # fmt: skip
ILL_VALUES = {
    "E11": {"L0301": (9.5, 2.5), "L0302": (8.1, 1.3)}, "J18": {"L0101": (13.0, 3.0), "L0601": (48.0, 25.0)},
    "J20": {"L0101": (10.5, 2.5), "L0601": (18.0, 10.0)}, "N18": {"L0203": (260.0, 90.0), "L0204": (14.0, 4.0)},
    "E78": {"L0401": (6.4, 0.8), "L0402": (2.6, 0.9), "L0403": (4.2, 0.6)}, "K35": {"L0101": (14.0, 3.0)},
}  # fmt: skip
EXPECTED_RULE = {
    "malformed_hl7": "HL7-PARSE", "out_of_range": "LAB-VALUE-RANGE", "unmapped_code": "LAB-LOINC-MAPPED",
    "missing_required": "LAB-PATIENT-ID",
}  # fmt: skip


@dataclass(frozen=True)
class LabItem:
    local_code: str
    local_name: str
    loinc: str
    loinc_name: str
    unit: str
    ref_low: float
    ref_high: float
    mean: float
    sd: float
    decimals: int
    panel_code: str
    panel_name: str


@cache
def lab_items() -> tuple[LabItem, ...]:
    with (DATA / "lab_items.csv").open(encoding="utf-8") as handle:
        return tuple(
            LabItem(
                r["local_code"],
                r["local_name"],
                r["loinc"],
                r["loinc_name"],
                r["unit"],
                float(r["ref_low"]),
                float(r["ref_high"]),
                float(r["mean"]),
                float(r["sd"]),
                int(r["decimals"]),
                r["panel_code"],
                r["panel_name"],
            )
            for r in csv.DictReader(handle)
        )


@cache
def panels() -> dict[str, list[LabItem]]:
    grouped: dict[str, list[LabItem]] = {}
    for item in lab_items():
        grouped.setdefault(item.panel_code, []).append(item)
    return grouped


def _hl7_ts(value: datetime) -> str:
    """YYYYMMDDHHMMSS (cut from isoformat, several times faster than strftime)."""
    s = value.isoformat(" ", "seconds")
    return s[0:4] + s[5:7] + s[8:10] + s[11:13] + s[14:16] + s[17:19]


PV1_CLASS = {"op": "O", "em": "E", "ip": "I"}


_DISTRIBUTIONS: dict[tuple[str, str], tuple[float, float, float]] = {}
_OBX_PARTS: dict[str, tuple[str, str]] = {}  # (memoised by item code: hashing the item itself costs more)


def _distribution(item: LabItem, icd3: str) -> tuple[float, float, float]:
    """Mean and sd of an item's results for a diagnosis group (shifted when ill), and the lowest value drawn."""
    found = _DISTRIBUTIONS.get((item.local_code, icd3))
    if found is None:
        mean, sd = ILL_VALUES.get(icd3, {}).get(item.local_code, (item.mean, item.sd))
        found = _DISTRIBUTIONS[(item.local_code, icd3)] = (mean, sd, 0.0 if item.ref_low == 0 else item.ref_low * 0.3)
    return found


def _obx_parts(item: LabItem) -> tuple[str, str]:
    """OBX-3 (local code, with LOINC when mapped) and OBX-6|OBX-7 (unit|reference range) of an item."""
    found = _OBX_PARTS.get(item.local_code)
    if found is None:
        code = f"{item.local_code}^{item.local_name}^L"
        if item.loinc:
            code += f"^{item.loinc}^{item.loinc_name}^LN"
        found = _OBX_PARTS[item.local_code] = (code, f"{item.unit}|{item.ref_low}-{item.ref_high}")
    return found


def _hl7_date(value: date) -> str:
    s = value.isoformat()
    return s[0:4] + s[5:7] + s[8:10]


class LisWriter:
    """One institution's LIS: ORU^R01 per lab order, batched per day into files."""

    kind = KIND

    def __init__(self, ctx: WriterContext) -> None:
        self.ctx = ctx
        self.rng = random.Random(ctx.seed)
        self.rates = {k: v * ctx.defect_multiplier for k, v in ctx.profiles["defects"]["by_kind"][KIND].items()}
        self.order_share = ctx.profiles["lab_order_share"]
        self.primary = ctx.institution_type != "二级医院"
        self.messages = 0
        self.results = 0
        self.seq = 0
        self.files = FolderMaker()

    def on_day(self, day: date, encounters: list[Encounter]) -> None:
        batch: list[tuple[str, Encounter, str]] = []  # (message, encounter, control id)
        stamp = day.isoformat().replace("-", "")  # YYYYMMDD, formatted once a day
        control_prefix = f"{self.ctx.short}{stamp}"
        factor = PRIMARY_CARE_FACTOR if self.primary else 1.0
        for enc in encounters:
            if self.rng.random() >= self.order_share[enc.setting] * factor:
                continue
            wanted = PANELS_BY_DIAGNOSIS.get(enc.icd10[:3], ["P01"])
            chosen = [p for p in wanted if self.rng.random() < 0.7] or [wanted[0]]
            for panel in chosen:
                self.seq += 1
                control = f"{control_prefix}{self.seq:07d}"
                batch.append((self._message(enc, panel, control, day), enc, control))
        if not batch:
            return
        folder = self.files.ensure(self.ctx.out_dir / stamp)
        records, defects = [], []
        org, arrival = self.ctx.org_code, datetime.combine(day, time(23, 59))
        for part, start in enumerate(range(0, len(batch), MESSAGES_PER_FILE), start=1):
            chunk = batch[start : start + MESSAGES_PER_FILE]
            name = f"ORU_{self.ctx.short}_{stamp}_{part:03d}.hl7"
            rel = f"{stamp}/{name}"
            messages = []
            for message, enc, control in chunk:
                message, defect, field = self._maybe_defect(message)
                if defect:
                    defects.append([org, KIND, rel, control, defect, field, EXPECTED_RULE[defect]])
                messages.append(message)
                records.append([org, "LIS", "lab_result", rel, control, enc.person.person_id])
            header = (f"FHS|^~\\&|LIS|{self.ctx.org_code}|HUTONG|HUTONG|{stamp}235900||{name}\r"
                      f"BHS|^~\\&|LIS|{self.ctx.org_code}|HUTONG|HUTONG|{stamp}235900\r")  # fmt: skip
            trailer = f"BTS|{len(messages)}\rFTS|1\r"
            path = folder / name
            path.write_bytes((header + "".join(messages) + trailer).encode("utf-8"))
            set_arrival(path, arrival)
        self.messages += len(batch)
        self.ctx.truth.records(records)
        self.ctx.truth.defects(defects)

    def _value(self, item: LabItem, icd10: str) -> float:
        mean, sd, low_bound = _distribution(item, icd10[:3])
        return round(max(low_bound, self.rng.gauss(mean, sd)), item.decimals)

    def _message(self, enc: Encounter, panel: str, control: str, day: date) -> str:
        person = enc.person
        observed = max(enc.start, datetime.combine(day, datetime.min.time())) + timedelta(
            minutes=self.rng.randint(20, 180)
        )
        reported = observed + timedelta(minutes=self.rng.randint(30, 240))
        family, given = enc.patient_name[:1], enc.patient_name[1:]
        pv1_class = PV1_CLASS[enc.setting]
        items = panels()[panel]
        reported_ts, observed_ts = _hl7_ts(reported), _hl7_ts(observed)
        segments = [
            f"MSH|^~\\&|LIS|{self.ctx.org_code}|HUTONG|HUTONG|{reported_ts}||ORU^R01^ORU_R01|{control}|P|2.5"
            "||||||UNICODE UTF-8",
            f"PID|1||{enc.local_patient_id}^^^{self.ctx.his_system}&{self.ctx.org_code}&L^PI||{family}^{given}||"
            f"{_hl7_date(person.birth_date)}|{'M' if person.sex == '1' else 'F'}|||{person.address}",
            f"PV1|1|{pv1_class}|{enc.dept_code}^^^{self.ctx.org_code}||||{enc.doctor_id}||||||||||||{enc.encounter_key}",
            f"ORC|RE|{control}P|{control}F||CM",
            f"OBR|1|{control}P|{control}F|{panel}^{items[0].panel_name}^L|||{observed_ts}|||||||"
            f"{observed_ts}||{enc.doctor_id}||||||{reported_ts}|||F",
        ]
        for n, item in enumerate(items, start=1):
            value = self._value(item, enc.icd10)
            flag = "H" if value > item.ref_high else "L" if value < item.ref_low else "N"
            code, unit_range = _obx_parts(item)
            segments.append(f"OBX|{n}|NM|{code}||{value}|{unit_range}|{flag}|||F|||{reported_ts}")
        self.results += len(items)
        return "\r".join(segments) + "\r"

    def _maybe_defect(self, message: str) -> tuple[str, str, str]:
        """Possibly damage a message in a labelled way; returns (message, defect type, field)."""
        roll = self.rng.random()
        r = self.rates
        if roll < r["malformed_hl7"]:
            segments = message.split("\r")
            return "\r".join(s for s in segments if not s.startswith("MSH")), "malformed_hl7", "MSH"
        roll -= r["malformed_hl7"]
        if roll < r["out_of_range"]:
            head, _, rest = message.partition("\rOBX|1|NM|")
            fields = rest.split("|")
            fields[2] = (
                "-" + fields[2].lstrip("-") if self.rng.random() < 0.5 else str(float(fields[2] or 0) * 100 + 999)
            )
            return head + "\rOBX|1|NM|" + "|".join(fields), "out_of_range", "OBX-5"
        roll -= r["out_of_range"]
        if roll < r["unmapped_code"]:
            head, _, rest = message.partition("\rOBX|1|NM|")
            fields = rest.split("|")
            fields[0] = f"L99{self.rng.randint(10, 99)}^院内自定项目^L"
            return head + "\rOBX|1|NM|" + "|".join(fields), "unmapped_code", "OBX-3"
        roll -= r["unmapped_code"]
        if roll < r["missing_required"]:
            head, _, rest = message.partition("\rPID|1||")
            return head + "\rPID|1||" + rest[rest.index("|") :], "missing_required", "PID-3"
        return message, "", ""

    def finish(self) -> dict[str, int]:
        return {"messages": self.messages, "results": self.results}


def make_writer(ctx: WriterContext) -> LisWriter:
    return LisWriter(ctx)
