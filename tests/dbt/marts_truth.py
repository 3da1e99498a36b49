"""Indicators recomputed in plain Python from the synthetic county's source systems and ground truth — the HIS
databases as the institutions hold them, the public-health export files and truth/persons.csv — never from the
warehouse or the marts' SQL. Definitions follow STANDARDS.md and the marts' documented conventions."""

from __future__ import annotations

import csv
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from openpyxl import load_workbook

from connectors.public_health import CONTRACT

DRUG = {"13", "14", "15"}
DIAGNOSIS = {"05", "06", "07", "08"}


@dataclass
class Stay:
    admit: date | None
    discharge: date | None

    @property
    def valid(self) -> bool:
        return self.admit is not None and (self.discharge is None or self.discharge >= self.admit)


@dataclass
class Encounter:
    key: str
    kind: str  # op / em / ip
    start: date | None
    end: date | None


def _day(value: Any) -> date | None:
    if value in (None, ""):
        return None
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None


def his_encounters(db: Path, vendor: str) -> tuple[list[Encounter], list[tuple[str, str, float]]]:
    """Live encounters and fee lines (encounter id, national fee category, amount) of one HIS database."""
    con = sqlite3.connect(db)
    try:
        if vendor == "vendor_a":
            kinds = {"1": "op", "2": "em"}
            enc = [Encounter(k, kinds.get(t, "?"), _day(s), None)
                   for k, t, s in con.execute("SELECT GHID, JZLX, GHSJ FROM MZ_GHXX WHERE ZFBZ <> '1'")]  # fmt: skip
            enc += [Encounter(k, "ip", _day(s), _day(e))
                    for k, s, e in con.execute("SELECT ZYH, RYSJ, CYSJ FROM ZY_BAXX WHERE ZFBZ <> '1'")]  # fmt: skip
            fees = [(k, c.removeprefix("FY"), float(a))
                    for k, c, a in con.execute("SELECT JZLSH, FYLB, JE FROM SF_FYMX WHERE ZFBZ <> '1'")]  # fmt: skip
        else:
            kinds = {"OP": "op", "EM": "em", "IP": "ip"}
            enc = [Encounter(k, kinds.get(t, "?"), _day(s), _day(e) if t == "IP" else None)
                   for k, t, s, e in con.execute("SELECT visit_id, visit_type, visit_time, discharge_time FROM visit "
                                                 "WHERE coalesce(is_deleted, '0') <> '1'")]  # fmt: skip
            fees = [(k, c, float(a)) for k, c, a in con.execute(
                "SELECT visit_id, fee_category, amount FROM fee WHERE coalesce(is_deleted, '0') <> '1'")]  # fmt: skip
    finally:
        con.close()
    # 19 is the synthetic HIS's 检查用一次性医用材料费 (21 of the 2011 homepage): not a drug nor a diagnosis fee
    return enc, fees


def hospital_year(config: Any, year: int) -> dict[str, dict[str, float | None]]:
    """Per institution: visits, discharges, ALOS, bed occupancy, outpatient fee per visit and drug share,
    inpatient fee per discharge, for one calendar year (period days = days of the covered months)."""
    data: dict[str, tuple[list[Encounter], list[tuple[str, str, float]]]] = {}
    for inst in config.with_source("his"):
        db = config.data_dir / "sources" / inst.org_code / "his.sqlite"
        data[inst.org_code] = his_encounters(db, str(inst.sources["his"].get("vendor")))
    starts = [e.start for enc, _ in data.values() for e in enc if e.start]
    last = max(e.end or e.start for enc, _ in data.values() for e in enc if e.start)
    first = min(starts).replace(day=1)
    lo, hi = max(first, date(year, 1, 1)), min(_month_end(last), date(year, 12, 31))
    days = (hi - lo).days + 1
    out: dict[str, dict[str, float | None]] = {}
    for inst in config.with_source("his"):
        enc, fees = data[inst.org_code]
        by_key = {e.key: e for e in enc}
        visits = [e for e in enc if e.kind in ("op", "em") and e.start and e.start.year == year]
        stays = [e for e in enc if e.kind == "ip" and Stay(e.start, e.end).valid]
        out_stays = [e for e in stays if e.end and e.end.year == year]
        los = sum(max((e.end - e.start).days, 1) for e in out_stays)  # type: ignore[operator]
        occupied = 0
        for e in stays:
            leave = e.end or (last + timedelta(days=1))
            start, stop = max(e.start, lo), min(leave, hi + timedelta(days=1))  # type: ignore[type-var]
            occupied += max((stop - start).days, 0)
        op_fee = op_drug = ip_fee = 0.0
        for key, category, amount in fees:
            e = by_key.get(key)
            if e is None:
                continue
            if e.kind in ("op", "em") and e.start and e.start.year == year:
                op_fee += amount
                op_drug += amount if category in DRUG else 0
            elif e in out_stays:
                ip_fee += amount
        out[inst.org_code] = {
            "wl_visits": len(visits),
            "wl_discharges": len(out_stays),
            "hosp_alos": los / len(out_stays) if out_stays else None,
            "hosp_bed_occupancy": occupied * 100 / (inst.beds * days),
            "fee_op_per_visit": op_fee / len(visits) if visits else None,
            "fee_op_drug_share": op_drug * 100 / op_fee if op_fee else None,
            "fee_ip_per_discharge": ip_fee / len(out_stays) if out_stays else None,
        }
    return out


def _month_end(day: date) -> date:
    nxt = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return nxt - timedelta(days=1)


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _truth_rows(truth: Path, name: str) -> list[dict[str, str]]:
    with (truth / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def ph_rows(folder: Path, dataset: str, truth: Path) -> list[dict[str, str]]:
    """The rows of one data set's export files with standard column names; lines the truth marks malformed (the
    connector quarantines them) are left out. Rows with empty values land (the quality rules report them)."""
    spec = yaml.safe_load(Path(CONTRACT).read_text(encoding="utf-8"))["datasets"][dataset]
    header_of = {h.replace(" ", ""): col for col, c in spec["columns"].items() for h in c["headers"]}
    prefix = spec["file_form"].split("_")[0] + "_"
    broken = {r["local_key"] for r in _truth_rows(truth, "defects.csv") if r["defect_type"] == "malformed_csv"}
    rows: list[dict[str, str]] = []
    for path in sorted(folder.glob(prefix + "*")):
        if path.suffix == ".xlsx":
            sheet = load_workbook(path, read_only=True).active
            table = [["" if v is None else str(v) for v in row] for row in sheet.iter_rows(values_only=True)]
        else:
            lines = [line for n, line in enumerate(path.read_bytes().split(b"\r\n"), start=1)
                     if f"{path.name}#{n}" not in broken and line]  # fmt: skip
            encoding = "utf-8-sig" if _is_utf8(b"\n".join(lines)) else "gb18030"
            table = [next(csv.reader([line.decode(encoding)])) for line in lines]
        header = [header_of.get(h.replace(" ", ""), h) for h in table[0]]
        for values in table[1:]:
            row = dict(zip(header, values, strict=False))
            if row.get(spec["key"], "").strip():
                rows.append(row)
    return rows


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _number(value: str) -> float | None:
    try:
        return float(value)
    except ValueError:
        return None


def public_health_year(config: Any, year: int) -> dict[str, dict[str, float | None]]:
    """Per public-health institution: 建档率, hypertension/diabetes 规范管理率 and control rates, 65+ 管理率."""
    truth = config.data_dir / "truth"
    persons = _truth_rows(truth, "persons.csv")
    person_of = {(r["org_code"], r["local_key"]): r["person_id"]
                 for r in _truth_rows(truth, "source_records.csv") if r["entity"] == "health_record"}  # fmt: skip
    out: dict[str, dict[str, float | None]] = {}
    for inst in config.with_source("public_health"):
        org, folder = inst.org_code, config.data_dir / "sources" / inst.org_code / "public_health"
        people = [p for p in persons if p["township_code"] == inst.township]
        end = _generation_end(truth)  # the population's ages are taken on the generation's last day
        pop_65 = sum(1 for p in people if (end - date.fromisoformat(p["birth_date"])).days // 365 >= 65)
        records = ph_rows(folder, "health_record", truth)
        birth = {r["record_no"]: _day(r.get("birth_date")) for r in records}
        filed = {person_of.get((org, r["record_no"]), r["record_no"]) for r in records
                 if (_day(r["record_date"]) or date.max) <= date(year, 12, 31)}  # fmt: skip
        result: dict[str, float | None] = {"ph_record_rate": len(filed) * 100 / len(people)}
        for kind, dataset in (("htn", "hypertension_followup"), ("dm", "diabetes_followup")):
            services: dict[tuple[str, date], dict[str, str]] = {}
            for r in ph_rows(folder, dataset, truth):
                day = _day(r["visit_date"])
                if day and day.year == year:
                    key = (r["record_no"], day)
                    if key not in services or r["followup_no"] < services[key]["followup_no"]:
                        services[key] = r
            visits: dict[str, list[tuple[date, str, dict[str, str]]]] = defaultdict(list)
            for (record_no, day), r in services.items():
                visits[person_of.get((org, record_no), record_no)].append((day, r["followup_no"], r))
            standard = controlled = 0
            for items in visits.values():
                standard += sum(1 for _, _, r in items if r.get("visit_method") in ("门诊", "家庭")) >= 4
                day, _, last = max(items, key=lambda t: (t[0], t[1]))
                controlled += _on_target(kind, last, birth.get(last["record_no"]), day)
            managed = len(visits)
            result[f"ph_{kind}_standard_rate"] = standard * 100 / managed if managed else None
            result[f"ph_{kind}_control_rate"] = controlled * 100 / managed if managed else None
        checked = set()
        for r in ph_rows(folder, "elderly_checkup", truth):
            day, born = _day(r["checkup_date"]), birth.get(r["record_no"])
            if day and day.year == year and born and _age(born, day) >= 65:
                checked.add(person_of.get((org, r["record_no"]), r["record_no"]))
        result["ph_elderly_rate"] = len(checked) * 100 / pop_65 if pop_65 else None
        out[org] = result
    return out


def _generation_end(truth: Path) -> date:
    import json

    return date.fromisoformat(json.loads((truth / "generation.json").read_text(encoding="utf-8"))["end"])


def _on_target(kind: str, row: dict[str, str], born: date | None, day: date) -> bool:
    if kind == "dm":
        fbg = _number(row.get("fbg", ""))
        return fbg is not None and 1 <= fbg <= 40 and fbg < 7.0
    sbp, dbp = _number(row.get("sbp", "")), _number(row.get("dbp", ""))
    if sbp is None or dbp is None or not (40 <= sbp <= 300 and 20 <= dbp <= 200):
        return False
    elderly = born is not None and _age(born, day) >= 65
    return sbp < (150 if elderly else 140) and dbp < 90
