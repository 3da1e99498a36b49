"""Daily increments: day N+1 on top of a generated county — new visits and stays, patient updates,
discharges of open stays and cancelled registrations — for incremental ingestion runs."""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from synthetic.his import (
    DISPOSITION_A,
    SYSTEMS,
    Continuation,
    HisCounts,
    InstitutionPlan,
    Truth,
    generate_institution,
    plan_institutions,
)
from synthetic.population import generate_population
from synthetic.writers import TableWriter


@dataclass
class IncrementSummary:
    day: date
    his: dict[str, HisCounts] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)  # org → patient updates + discharges + cancellations
    other: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)


def _existing_patients(truth_dir: Path) -> dict[str, dict[str, str]]:
    """org → person → HIS local patient id, from the ground truth (streamed)."""
    found: dict[str, dict[str, str]] = {}
    with (truth_dir / "source_records.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["entity"] == "patient" and row["source_system"] in SYSTEMS.values():
                found.setdefault(row["org_code"], {})[row["person_id"]] = row["local_key"]
    return found


def _names(writer: TableWriter, vendor: str) -> dict[str, str]:
    sql = "SELECT BRID, BRXM FROM GY_BRXX" if vendor == "vendor_a" else "SELECT patient_id, patient_name FROM patient"
    return {key: name for key, name in writer.query(sql)}


def _ts(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _changes(writer: TableWriter, plan: InstitutionPlan, day: date, rng: random.Random, care: dict[str, Any]) -> int:
    """Edits an institution's HIS makes on `day` to rows it already had; returns how many rows changed."""
    a = plan.vendor == "vendor_a"
    at = datetime.combine(day, datetime.min.time())
    patients = writer.query("SELECT BRID FROM GY_BRXX" if a else "SELECT patient_id FROM patient")
    moved = [r[0] for r in patients if rng.random() < 0.002]
    writer.execute(
        "UPDATE GY_BRXX SET LXDH = :phone, GXSJ = :ts WHERE BRID = :key" if a
        else "UPDATE patient SET mobile = :phone, last_modified = :ts WHERE patient_id = :key",
        [{"phone": f"1{rng.choice('3589')}{rng.randrange(10**9):09d}", "key": key,
          "ts": _ts(at + timedelta(hours=rng.randint(8, 17), minutes=rng.randint(0, 59)))} for key in moved],
    )  # fmt: skip
    los = float(care["mean_length_of_stay"].get(plan.type, 0)) or 1.0
    open_stays = writer.query(
        "SELECT ZYH FROM ZY_BAXX WHERE CYSJ IS NULL AND RYSJ IS NOT NULL"
        if a
        else "SELECT visit_id FROM visit WHERE visit_type = 'IP' AND discharge_time IS NULL AND visit_time IS NOT NULL"
    )
    discharged = []
    for (key,) in open_stays:
        if rng.random() < 1 / los:
            out = at + timedelta(hours=rng.randint(8, 16), minutes=rng.randint(0, 59))
            disposition = rng.choices(("1", "2", "3", "4", "5"), weights=(88, 4, 3, 4, 1))[0]
            discharged.append({"key": key, "out": _ts(out), "disp": DISPOSITION_A[disposition] if a else disposition,
                               "ts": _ts(out + timedelta(minutes=rng.randint(5, 90)))})  # fmt: skip
    writer.execute(
        "UPDATE ZY_BAXX SET CYSJ = :out, LYFS = :disp, GXSJ = :ts WHERE ZYH = :key" if a
        else "UPDATE visit SET discharge_time = :out, discharge_disposition = :disp, last_modified = :ts "
        "WHERE visit_id = :key",
        discharged,
    )  # fmt: skip
    yesterday = (day - timedelta(days=1)).isoformat()
    recent = writer.query(
        "SELECT GHID FROM MZ_GHXX WHERE ZFBZ = '0' AND GHSJ LIKE :d"
        if a
        else "SELECT visit_id FROM visit WHERE is_deleted = '0' AND visit_type <> 'IP' AND visit_time LIKE :d",
        {"d": f"{yesterday}%"},
    )
    cancelled = [{"key": k, "ts": _ts(at + timedelta(hours=rng.randint(0, 10)))} for (k,) in recent
                 if rng.random() < care["cancelled_registration"]]  # fmt: skip
    writer.execute(
        "UPDATE MZ_GHXX SET ZFBZ = '1', GXSJ = :ts WHERE GHID = :key" if a
        else "UPDATE visit SET is_deleted = '1', last_modified = :ts WHERE visit_id = :key",
        cancelled,
    )  # fmt: skip
    return len(moved) + len(discharged) + len(cancelled)


def increment(
    config: Any, out_dir: Path | None = None, day: date | None = None, progress: Callable[[str], None] | None = None
) -> IncrementSummary:
    """Append the day after the last generated day to every source of the county (deterministic for the seed)."""
    import synthetic

    out_dir = Path(out_dir or config.data_dir)
    truth_dir = out_dir / "truth"
    state_file = truth_dir / "generation.json"
    if not state_file.is_file():
        raise FileNotFoundError(f"no generated county in {out_dir}; run `hutong synth` before increments")
    state = json.loads(state_file.read_text(encoding="utf-8"))
    last = date.fromisoformat(state["last_day"])
    day = day or last + timedelta(days=1)
    if day != last + timedelta(days=1):
        raise ValueError(f"the county is generated up to {last}; the next increment is {last + timedelta(days=1)}")
    spec = synthetic.load_sizes()["sizes"][state["size"]]
    seed, end = int(state["seed"]), date.fromisoformat(state["end"])
    profiles = synthetic.load_profiles()
    same_name = float(profiles["identity_noise"]["same_name_neighbour"])
    people = generate_population(config.county, int(spec["persons"]), seed, end, same_name)
    plans = plan_institutions(config, people, int(spec["days"]), profiles, end)
    existing = _existing_patients(truth_dir)
    summary = IncrementSummary(day)
    kinds = tuple(state["kinds"]) if state.get("kinds") else None
    with (
        (truth_dir / "source_records.csv").open("a", encoding="utf-8", newline="") as rec_handle,
        (truth_dir / "defects.csv").open("a", encoding="utf-8", newline="") as def_handle,
        (truth_dir / "identity_noise.csv").open("a", encoding="utf-8", newline="") as noise_handle,
    ):
        truth = Truth(csv.writer(rec_handle).writerows, csv.writer(def_handle).writerows,
                      csv.writer(noise_handle).writerows)  # fmt: skip
        for index, plan in enumerate(plans):
            if progress:
                progress(f"{day} HIS {plan.short} ({index + 1}/{len(plans)})")
            template = state.get("his_url_template")
            target = (template.format(org_code=plan.org_code, short=plan.short.lower()) if template
                      else f"sqlite:///{out_dir / 'sources' / plan.org_code / 'his.sqlite'}")  # fmt: skip
            writer = TableWriter(target)
            writer.open(plan.vendor)
            names = _names(writer, plan.vendor)
            rng = random.Random(seed * 7919 + day.toordinal() * 31 + index)
            summary.updated[plan.org_code] = _changes(writer, plan, day, rng, profiles["care"])
            writer.finish()
            patients = {p: (key, names.get(key, "")) for p, key in existing.get(plan.org_code, {}).items()}
            continuation = Continuation(patients, int(state["next_seq"][plan.org_code]))
            listeners = synthetic.listeners_for(config, plan, index, out_dir, truth, seed * 7919 + day.toordinal(),
                                                day, day, profiles, kinds)  # fmt: skip
            counts = generate_institution(plan, TableWriter(target), truth, profiles["care"], day, day,
                                          rng.randrange(2**31), listeners, continuation)  # fmt: skip
            summary.his[plan.org_code] = counts
            summary.other[plan.org_code] = {w.kind: w.finish() for w in listeners}
            state["next_seq"][plan.org_code] = counts.next_seq
    state["last_day"] = day.isoformat()
    state_file.write_text(json.dumps(state, indent=1), encoding="utf-8")
    return summary
