"""Prescriptions, inpatient orders, procedures (ICD-9-CM-3) and fees by 病案首页 category for HIS encounters."""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from synthetic.population import DATA


@dataclass(frozen=True)
class Drug:
    local_code: str
    name: str
    atc: str
    spec: str
    unit: str
    price: float
    prefixes: tuple[str, ...]


@dataclass(frozen=True)
class Procedure:
    code: str
    name: str
    prefixes: tuple[str, ...]
    surgery_fee: float


def _rows(name: str) -> list[dict[str, str]]:
    with (DATA / name).open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@cache
def drugs() -> tuple[Drug, ...]:
    return tuple(
        Drug(
            r["local_code"],
            r["name"],
            r["atc"],
            r["spec"],
            r["unit"],
            float(r["price"]),
            tuple(r["icd10_prefixes"].split("|")),
        )
        for r in _rows("drugs.csv")
    )


@cache
def procedures() -> tuple[Procedure, ...]:
    return tuple(
        Procedure(r["icd9cm3"], r["name"], tuple(r["icd10_prefixes"].split("|")), float(r["fee_surgery"]))
        for r in _rows("procedures.csv")
    )


@cache
def fee_categories() -> dict[str, str]:
    """National 病案首页 fee category code → vendor A local code."""
    return {r["code"]: r["vendor_a_code"] for r in _rows("fee_categories.csv")}


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(" ", "seconds")


@cache
def _for(icd10: str, catalogue: str) -> tuple[Any, ...]:
    """Entries of a catalogue ("drugs" / "procedures") whose ICD-10 prefixes match the diagnosis (cached by
    name: hashing the catalogue itself on every call cost more than the lookup)."""
    items = drugs() if catalogue == "drugs" else procedures()
    return tuple(i for i in items if any(icd10.startswith(p) for p in i.prefixes))


@dataclass
class OrderRows:
    """Rows per vendor table produced for one day."""

    tables: dict[str, list[list[Any]]]

    def add(self, table: str, row: list[Any]) -> None:
        self.tables.setdefault(table, []).append(row)


def outpatient(
    out: OrderRows,
    vendor: str,
    rng: random.Random,
    key: str,
    pid: str,
    icd10: str,
    at: datetime,
    doctor: str,
    updated: datetime,
    deleted: str,
    lab: bool,
    imaging: bool,
) -> None:
    """Prescription lines and fees of one outpatient/emergency visit."""
    at_text, updated_text = _ts(at), _ts(updated)
    candidates = _for(icd10, "drugs") or drugs()
    lines = rng.sample(candidates, k=min(len(candidates), rng.choice((0, 1, 1, 2, 2, 3))))
    western = herbal = 0.0
    for i, drug in enumerate(lines, start=1):
        qty = rng.choice((1, 1, 2, 3))
        amount = round(qty * drug.price, 2)
        if drug.atc:
            western += amount
        else:
            herbal += amount
        if vendor == "vendor_a":
            out.add(
                "MZ_CFMX",
                [
                    f"{key}-{i}",
                    key,
                    pid,
                    drug.local_code,
                    drug.name,
                    drug.spec,
                    str(qty),
                    drug.unit,
                    f"{drug.price:.2f}",
                    f"{amount:.2f}",
                    at_text,
                    doctor,
                    updated_text,
                    deleted,
                ],
            )
        else:
            out.add(
                "prescription",
                [
                    f"{key}-{i}",
                    key,
                    pid,
                    drug.local_code,
                    drug.name,
                    drug.atc or None,
                    drug.spec,
                    qty,
                    drug.unit,
                    drug.price,
                    amount,
                    at_text,
                    doctor,
                    updated_text,
                    deleted,
                ],
            )
    fees = {"01": round(rng.uniform(8, 30), 2), "13": western, "14": herbal}
    if lab:
        fees["06"] = round(rng.uniform(30, 260), 2)
    if imaging:
        fees["07"] = round(rng.uniform(60, 480), 2)
    _fees(out, vendor, key, "MZ", fees, at_text, updated_text, deleted)


def inpatient(
    out: OrderRows,
    vendor: str,
    rng: random.Random,
    key: str,
    pid: str,
    icd10: str,
    admitted: datetime,
    discharged: datetime | None,
    doctor: str,
    updated: datetime,
    window_end: datetime,
) -> None:
    """Orders, procedures and fees of one stay (fees up to discharge, or up to the window end if still in)."""
    until = discharged or window_end
    updated_text, stop_text = _ts(updated), _ts(discharged)
    days = max(1, (until - admitted).days)
    candidates = _for(icd10, "drugs") or drugs()
    drug_total = 0.0
    for i, drug in enumerate(rng.sample(candidates, k=min(len(candidates), rng.randint(1, 4))), start=1):
        long_term = rng.random() < 0.7
        stop = stop_text if long_term else _ts(admitted + timedelta(hours=rng.randint(1, 12)))
        drug_total += drug.price * (days if long_term else 1)
        content = f"{drug.name} {drug.spec} {'每日一次' if long_term else '立即'}"
        if vendor == "vendor_a":
            out.add(
                "ZY_YZ",
                [
                    f"{key}-{i}",
                    key,
                    pid,
                    "长期" if long_term else "临时",
                    content,
                    drug.local_code,
                    _ts(admitted + timedelta(minutes=30 + i)),
                    stop,
                    doctor,
                    updated_text,
                    "0",
                ],
            )
        else:
            out.add(
                "inpatient_order",
                [
                    f"{key}-{i}",
                    key,
                    pid,
                    "L" if long_term else "T",
                    content,
                    drug.local_code,
                    _ts(admitted + timedelta(minutes=30 + i)),
                    stop,
                    doctor,
                    updated_text,
                    "0",
                ],
            )
    surgery_fee = 0.0
    for i, proc in enumerate(_for(icd10, "procedures"), start=1):
        if rng.random() < 0.6:
            continue
        at = admitted + timedelta(hours=rng.randint(2, 48))
        surgery_fee += proc.surgery_fee
        if vendor == "vendor_a":
            out.add("ZY_SSJL", [f"{key}-S{i}", key, pid, proc.code, proc.name, _ts(at), doctor, updated_text, "0"])
        else:
            out.add("surgery", [f"{key}-S{i}", key, pid, proc.code, proc.name, _ts(at), doctor, updated_text, "0"])
    fees = {
        "01": round(days * rng.uniform(40, 80), 2),
        "02": round(days * rng.uniform(20, 60), 2),
        "03": round(days * rng.uniform(30, 60), 2),
        "06": round(rng.uniform(300, 1500), 2),
        "07": round(rng.uniform(0, 1200), 2),
        "13": round(drug_total, 2),
        "19": round(rng.uniform(50, 600), 2),
    }
    if surgery_fee:
        fees["10"] = surgery_fee
    _fees(out, vendor, key, "ZY", fees, _ts(until), updated_text, "0")


def _fees(
    out: OrderRows,
    vendor: str,
    key: str,
    setting: str,
    fees: dict[str, float],
    at: str | None,
    updated: str | None,
    deleted: str,
) -> None:
    """Fee rows by 病案首页 category (`at`/`updated` already formatted)."""
    local = fee_categories()
    for category, amount in fees.items():
        if amount <= 0:
            continue
        if vendor == "vendor_a":
            out.add(
                "SF_FYMX",
                [f"{key}-F{category}", key, setting, local[category], f"{amount:.2f}", at, updated, deleted],
            )
        else:
            out.add("fee", [f"{key}-F{category}", key, category, round(amount, 2), at, updated, deleted])
