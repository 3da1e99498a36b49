"""The county's residents: names, sex, birth dates (age pyramid), 身份证号, households, addresses, phones."""

from __future__ import annotations

import csv
import itertools
import random
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import yaml

from synthetic.draws import pick
from synthetic.identity import make_id

DATA = Path(__file__).with_name("data")
# (lowest age, highest age, share) — shaped on the 2020 census pyramid of a central-China county
AGE_BANDS = ((0, 14, 0.17), (15, 29, 0.15), (30, 44, 0.20), (45, 59, 0.25), (60, 74, 0.17), (75, 95, 0.06))
HUI_TOWNSHIP_SHARE = 0.35  # share of 回族 residents in 金寨回族乡


@dataclass(frozen=True, slots=True)
class Person:
    person_id: str
    household_id: str
    name: str
    sex: str  # GB/T 2261.1: 1 男, 2 女
    birth_date: date
    id_no: str
    township_code: str
    township_name: str
    address: str
    phone: str
    ethnicity: str  # GB 3304 code
    marital: str  # GB/T 2261.2 code
    insurance: str  # 医疗付费方式 code
    twin_of: str = ""


@cache
def _surnames() -> tuple[list[str], list[float]]:
    with (DATA / "surnames.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["surname"] for r in rows], [float(r["weight"]) for r in rows]


@cache
def _surname_cum() -> tuple[list[str], list[float]]:
    """Surnames and their cumulative weights (`choices(cum_weights=...)` draws as `choices(weights=...)` does)."""
    surnames, weights = _surnames()
    return surnames, list(itertools.accumulate(weights))


@cache
def given_chars() -> dict:
    return yaml.safe_load((DATA / "given_chars.yaml").read_text(encoding="utf-8"))


def _given(rng: random.Random, sex: str) -> str:
    chars = given_chars()["male" if sex == "1" else "female"]
    return "".join(rng.choice(chars) for _ in range(1 if rng.random() < 0.3 else 2))


AGE_CUM = list(itertools.accumulate(b[2] for b in AGE_BANDS))
MEMBERS, MEMBERS_CUM = (1, 2, 3, 4, 5), list(itertools.accumulate((15, 30, 25, 20, 10)))
MARITAL, MARITAL_CUM = ("20", "30", "40", "10"), {old: list(itertools.accumulate((85, 20 if old else 5, 4, 6)))
                                                  for old in (False, True)}  # fmt: skip
INSURANCE, INSURANCE_CUM = ("03", "02", "01", "07"), list(itertools.accumulate((55, 20, 20, 5)))


def _birth(rng: random.Random, end: date) -> date:
    low, high, _ = pick(rng, AGE_BANDS, AGE_CUM)
    age_days = rng.randint(low * 365, high * 365 + 364)
    return end - timedelta(days=age_days)


def _phone(rng: random.Random) -> str:
    return rng.choice(("13", "15", "17", "18", "19")) + f"{rng.randrange(10**9):09d}"


def generate_population(
    county: dict, persons: int, seed: int, end: date, same_name_rate: float = 0.003
) -> list[Person]:
    """`persons` residents spread over the county's townships, deterministic for a seed."""
    rng = random.Random(seed)
    surnames, surname_cum = _surname_cum()
    townships = county["townships"]
    county_prefix = f"{county.get('province', '')}{county.get('city', '')}{county['name']}"
    area = str(county["division_code"])
    used_ids: set[str] = set()
    people: list[Person] = []
    household = 0
    while len(people) < persons:
        household += 1
        town = rng.choice(townships)
        village = rng.randint(1, 30)
        address = f"{county_prefix}{town['name']}{village}村{rng.randint(1, 200)}号"
        surname = pick(rng, surnames, surname_cum)
        hui = town["name"].endswith("回族乡") and rng.random() < HUI_TOWNSHIP_SHARE
        members = pick(rng, MEMBERS, MEMBERS_CUM)
        twin_next = rng.random() < 0.01
        previous: Person | None = None
        adult_phone = ""  # children are registered with a parent's phone: a classic hard non-match
        for m in range(members):
            if len(people) >= persons:
                break
            if twin_next and previous is not None and m == 1:
                sex, birth, twin_of = previous.sex, previous.birth_date, previous.person_id
            else:
                sex, birth, twin_of = rng.choice("12"), _birth(rng, end), ""
            while True:
                seq = rng.randrange(1 if sex == "1" else 2, 1000, 2)
                id_no = make_id(area, birth, seq)
                if id_no not in used_ids:
                    used_ids.add(id_no)
                    break
            age = (end - birth).days // 365
            marital = "10" if age < 22 else pick(rng, MARITAL, MARITAL_CUM[age >= 60])
            name = surname + _given(rng, sex)
            if m == 0 and people and rng.random() < same_name_rate and people[-1].sex == sex:
                name = people[-1].name  # a neighbour of the same name and sex: a hard non-match for the MPI
            person = Person(
                person_id=f"P{len(people) + 1:08d}",
                household_id=f"H{household:07d}",
                name=name,
                sex=sex,
                birth_date=birth,
                id_no=id_no,
                township_code=town["code"],
                township_name=town["name"],
                address=address,
                phone=adult_phone if age < 18 and adult_phone else _phone(rng),
                ethnicity="03" if hui else ("01" if rng.random() < 0.995 else rng.choice(("02", "04", "11"))),
                marital=marital,
                insurance=pick(rng, INSURANCE, INSURANCE_CUM),
                twin_of=twin_of,
            )
            people.append(person)
            previous = person
            if age >= 18 and not adult_phone:
                adult_phone = person.phone
    return people


POPULATION_FIELDS = ["year", "township_code", "township_name", "sex_code", "age_low", "age_high", "population"]
POPULATION_BANDS = (*((low, low + 4) for low in range(0, 85, 5)), (85, 120))  # 5-year bands, 85+


def write_population_table(people: list[Person], on: date, path: Path) -> int:
    """The statistics bureau's table for the synthetic county: 常住人口 per township × sex × 5-year age band
    (ages on `on`), every combination present (zero counts too). Returns the number of rows written."""
    counts: dict[tuple[str, str, int], int] = {}
    names: dict[str, str] = {}
    for p in people:
        age = (on - p.birth_date).days // 365
        low = min(age // 5 * 5, POPULATION_BANDS[-1][0])  # the band's lowest age (5-year bands, 85+)
        counts[(p.township_code, p.sex, low)] = counts.get((p.township_code, p.sex, low), 0) + 1
        names[p.township_code] = p.township_name
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(POPULATION_FIELDS)
        for code in sorted(names):
            for sex in ("1", "2"):
                for low, high in POPULATION_BANDS:
                    writer.writerow([on.year, code, names[code], sex, low, high, counts.get((code, sex, low), 0)])
                    rows += 1
    return rows
