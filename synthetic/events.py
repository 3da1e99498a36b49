"""Care events shared between source writers: the HIS generator emits each day's encounters, and the lab,
imaging and EMR writers turn them into messages, studies and documents about the same patients and visits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from synthetic.population import Person


class Encounter(NamedTuple):
    """One visit or stay as the HIS recorded it (what other systems of the same institution refer to).
    A NamedTuple: immutable, and several times cheaper to create than a frozen dataclass."""

    org_code: str
    short: str
    institution_type: str
    source_system: str  # HIS-A / HIS-B
    encounter_key: str  # HIS registration / admission number
    local_patient_id: str  # the institution's patient id for this person
    person: Person  # the true person (never written into source data by itself)
    patient_name: str  # the name as this institution spells it (may carry a typo)
    setting: str  # op / em / ip
    start: datetime  # visit or admission time (true time, even where the HIS row lost it)
    end: datetime | None  # discharge time for stays still open at window end: None
    dept_code: str
    dept_name: str
    doctor_id: str
    icd10: str
    diagnosis_name: str


class Truth(Protocol):
    """Ground-truth sinks (rows as lists, columns as in truth/source_records.csv and truth/defects.csv)."""

    def records(self, rows: list[list[Any]]) -> None: ...

    def defects(self, rows: list[list[Any]]) -> None: ...


class SourceWriter(Protocol):
    """A per-institution writer of one source kind, fed the institution's encounters day by day."""

    kind: str

    def on_day(self, day: date, encounters: list[Encounter]) -> None: ...

    def finish(self) -> dict[str, int]:
        """Flush and close; returns counts by record type (e.g. {"messages": 120, "results": 900})."""
        ...


@dataclass(frozen=True)
class WriterContext:
    """Everything a source writer needs about one institution (see `synthetic.registry`)."""

    org_code: str
    short: str
    name: str
    institution_type: str  # 二级医院 / 乡镇卫生院 / 社区卫生服务中心 / 村卫生室
    his_system: str  # HIS-A / HIS-B: the system whose patient ids and encounter keys the other sources quote
    settings: dict[str, Any]  # this source's settings from the platform config (e.g. emr format: cda / fhir)
    out_dir: Path  # {out_dir}/sources/{org_code}/{kind}: write files only below this folder
    people: list[Person]  # residents this institution serves (public health: its township's residents)
    truth: Truth
    seed: int  # use random.Random(seed): never time- or hash()-based randomness
    start: date  # care window (inclusive)
    end: date
    profiles: dict[str, Any]  # synthetic/profiles.yaml
    defect_multiplier: float  # this institution's type × own multiplier for defect rates
