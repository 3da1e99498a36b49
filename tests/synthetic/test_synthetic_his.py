"""Synthetic county HIS: deterministic, valid identity numbers, every labelled defect really in the source."""

from __future__ import annotations

import csv
import sqlite3
from datetime import datetime
from pathlib import Path

import pytest

import synthetic
from hutong.config import load_config
from synthetic.identity import is_valid

MAPPED_SEX = {"男", "女", "未知", "M", "F", "U"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> synthetic.GenerationSummary:
    return synthetic.generate(
        load_config(), size="tiny", out_dir=tmp_path_factory.mktemp("tiny"), seed=11, kinds=("his",)
    )


def _dump(path: Path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return [(t, *row) for t in tables for row in conn.execute(f"SELECT * FROM {t}")]


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_same_seed_gives_identical_output(tiny, tmp_path):
    again = synthetic.generate(load_config(), size="tiny", out_dir=tmp_path, seed=11, kinds=("his",))
    for name in ("persons.csv", "source_records.csv", "defects.csv"):
        assert (tiny.truth_dir / name).read_bytes() == (again.truth_dir / name).read_bytes(), name
    for org in tiny.his:
        rel = Path("sources") / org / "his.sqlite"
        assert _dump(tiny.out_dir / rel) == _dump(again.out_dir / rel), org
    other = synthetic.generate(load_config(), size="tiny", out_dir=tmp_path / "other", seed=12, kinds=("his",))
    assert (other.truth_dir / "persons.csv").read_bytes() != (tiny.truth_dir / "persons.csv").read_bytes()


def test_every_institution_has_a_his_in_its_vendor_schema(tiny):
    config = load_config()
    assert set(tiny.his) == {i.org_code for i in config.with_source("his")}
    for inst in config.with_source("his"):
        tables = {t for (t, *_) in _dump(tiny.out_dir / "sources" / inst.org_code / "his.sqlite")}
        expected = {"GY_BRXX", "MZ_GHXX", "GY_DMZD"} if inst.sources["his"].get("vendor") == "vendor_a" else {
            "patient", "visit", "code_dict"}  # fmt: skip
        assert expected <= tables, inst.short
        counts = tiny.his[inst.org_code]
        assert counts.patients > 0 and counts.outpatient > 0


def test_resident_ids_carry_valid_check_digits_and_agree_with_sex_and_birth(tiny):
    persons = _read(tiny.truth_dir / "persons.csv")
    assert len(persons) == 2000
    assert all(is_valid(p["id_no"]) for p in persons)
    assert all(int(p["id_no"][16]) % 2 == (1 if p["sex"] == "1" else 0) for p in persons)
    assert all(p["id_no"][6:14] == p["birth_date"].replace("-", "") for p in persons)
    assert len({p["id_no"] for p in persons}) == len(persons)


def test_truth_covers_every_source_record(tiny):
    records = {(r["org_code"], r["source_table"], r["local_key"]) for r in _read(tiny.truth_dir / "source_records.csv")}
    keys = {"GY_BRXX": 0, "MZ_GHXX": 0, "ZY_BAXX": 0, "patient": 0, "visit": 0}
    for org in tiny.his:
        with sqlite3.connect(tiny.out_dir / "sources" / org / "his.sqlite") as conn:
            for table, key in (("GY_BRXX", "BRID"), ("MZ_GHXX", "GHID"), ("ZY_BAXX", "ZYH"), ("patient", "patient_id"),
                               ("visit", "visit_id")):  # fmt: skip
                try:
                    rows = conn.execute(f"SELECT {key} FROM {table}").fetchall()
                except sqlite3.OperationalError:
                    continue
                for (value,) in rows:
                    assert (org, table, value) in records
                    keys[table] += 1
    assert all(keys.values())


def _row(out_dir: Path, org: str, table: str, key: str) -> dict:
    key_col = {"GY_BRXX": "BRID", "MZ_GHXX": "GHID", "ZY_BAXX": "ZYH", "patient": "patient_id", "visit": "visit_id"}
    with sqlite3.connect(out_dir / "sources" / org / "his.sqlite") as conn:
        conn.row_factory = sqlite3.Row
        rows = conn.execute(f"SELECT * FROM {table} WHERE {key_col[table]} = ?", [key]).fetchall()
    assert len(rows) == 1, (org, table, key)
    return dict(rows[0])


def test_every_labelled_defect_is_in_the_source(tiny):
    defects = _read(tiny.truth_dir / "defects.csv")
    kinds = {d["defect_type"] for d in defects}
    labelled = {(d["org_code"], d["local_key"], d["defect_type"]) for d in defects}
    assert {"missing_required", "unmapped_code", "late_delivery"} <= kinds
    for d in defects:
        row = _row(tiny.out_dir, d["org_code"], d["source_table"], d["local_key"])
        kind, value = d["defect_type"], row.get(d["field"])
        if kind == "missing_required" or kind == "discharge_without_admission":
            assert value is None
        elif kind == "unmapped_code":
            assert value not in MAPPED_SEX
        elif kind == "invalid_id_check":
            assert len(value) == 18 and not is_valid(value)
        elif kind == "sex_id_mismatch":
            id_no = row.get("ZJHM") or row.get("id_card_no")
            assert (value in ("男", "M")) != (int(id_no[16]) % 2 == 1)
        elif kind == "birth_id_mismatch":
            id_no = row.get("ZJHM") or row.get("id_card_no")
            assert value.replace("-", "") != id_no[6:14]
        elif kind == "discharge_before_admission":
            admitted = row.get("RYSJ") or row.get("visit_time")
            assert datetime.fromisoformat(value) < datetime.fromisoformat(admitted)
        elif kind == "late_delivery":
            updated = datetime.fromisoformat(value)
            event = row.get("GHSJ") or row.get("visit_time") or row.get("RYSJ") or row.get("CYSJ")
            ends = [row.get("CYSJ"), row.get("discharge_time")]
            times = [datetime.fromisoformat(v) for v in [event, *ends] if v]
            if times:
                assert updated.date() > max(times).date()
            else:  # the row also lost its time: that must be labelled too
                assert (d["org_code"], d["local_key"], "missing_required") in labelled
        elif kind == "duplicate_record":
            assert d["local_key"].endswith("D")


def test_demo_size_labels_every_his_defect_kind(tmp_path):
    demo = synthetic.generate(load_config(), size="demo", out_dir=tmp_path, seed=3, kinds=("his",))
    kinds = {d["defect_type"] for d in _read(demo.truth_dir / "defects.csv")}
    assert kinds == set(synthetic.his.EXPECTED_RULE)
    assert demo.persons == 20000 and sum(c.outpatient for c in demo.his.values()) > 15000


def test_identity_noise_is_recorded_and_present(tiny):
    noise = _read(tiny.truth_dir / "identity_noise.csv")
    persons = {p["person_id"]: p for p in _read(tiny.truth_dir / "persons.csv")}
    assert {"name_typo", "phone_changed", "missing_id"} <= {n["noise_type"] for n in noise}
    for n in noise:
        row, person = _row(tiny.out_dir, n["org_code"], n["source_table"], n["local_key"]), persons[n["person_id"]]
        value = row[n["field"]]
        if n["noise_type"] == "name_typo":
            assert value != person["name"] and value[0] == person["name"][0]
        elif n["noise_type"] == "phone_changed":
            assert value != person["phone"]
        elif n["noise_type"] == "missing_id":
            assert value is None
        elif n["noise_type"] == "legacy_15_digit_id":
            assert len(value) == 15 and value[:6] == person["id_no"][:6]
        elif n["noise_type"] == "address_changed":
            assert value != person["address"] and person["township_name"] in value  # moved within the township
        elif n["noise_type"] == "day_month_swap":
            assert value.replace("-", "") != person["birth_date"].replace("-", "")


def test_output_does_not_depend_on_worker_count(tmp_path):
    config = load_config()
    one = synthetic.generate(config, size="tiny", out_dir=tmp_path / "one", seed=13, workers=1)
    two = synthetic.generate(config, size="tiny", out_dir=tmp_path / "two", seed=13, workers=2)
    assert one.records == two.records
    files = sorted(p.relative_to(one.out_dir) for p in one.out_dir.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two.out_dir) for p in two.out_dir.rglob("*") if p.is_file())
    for rel in files:
        if rel.suffix == ".sqlite":
            assert _dump(one.out_dir / rel) == _dump(two.out_dir / rel)
        else:
            assert (one.out_dir / rel).read_bytes() == (two.out_dir / rel).read_bytes(), rel
