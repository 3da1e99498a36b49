"""Registration data sets for the city platform on both warehouses: persons (EMPI golden records when the MPI has
linked them, identifiers per the feed's contract), staff (the HIS rosters of both vendor schemas, covering every
doctor the encounters name; staff who left are not registered) and encounters."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from marts.delivery import run_feed
from marts.feed_config import Retry, Target, feed
from warehouse import Warehouse

PERIOD = "2026-11-01"


def _box(county) -> Target:
    return Target("box", str(county.data_dir / "box"), retry=Retry(attempts=1))


def _files(wh: Warehouse, name: str) -> list[Path]:
    return [Path(r[0]) for r in wh.query("SELECT file_name FROM feeds.delivery WHERE feed = ? ORDER BY 1", [name])]


def test_staff_roster_lands_from_both_vendor_schemas_and_is_registered(county):
    f = feed("staff_registration")
    with Warehouse(county.url) as wh:
        systems = {r[0] for r in wh.query("SELECT DISTINCT _source_system FROM raw.his_staff")}
        unknown_doctors = wh.query(
            "SELECT e.org_code, e.doctor_id FROM cdr.cdr__encounter e WHERE e.doctor_id IS NOT NULL AND NOT EXISTS "
            "(SELECT 1 FROM raw.his_staff s WHERE s._org_code = e.org_code AND s.staff_id = e.doctor_id)"
        )
        runs = [run_feed(wh, f, _box(county), org, PERIOD, county.data_dir) for org in county.orgs]
        active = wh.query(
            "SELECT _org_code || '|' || staff_id FROM raw.his_staff WHERE _op <> 'D' AND NOT EXISTS (SELECT 1 FROM "
            "raw.his_staff d WHERE d._org_code = raw.his_staff._org_code AND d.staff_id = raw.his_staff.staff_id "
            "AND d._op = 'D')"
        )
        left = wh.count("raw.his_staff", "_op = 'D'")
        rows = [r for p in _files(wh, f.name) for r in csv.DictReader(io.StringIO(p.read_text(encoding="utf-8-sig")))]
        again = [run_feed(wh, f, _box(county), org, PERIOD, county.data_dir) for org in county.orgs]
    assert systems == {"HIS-A", "HIS-B"}  # both vendor schemas carry a roster
    assert unknown_doctors == []  # every doctor of every encounter is on the roster
    assert left > 0  # some staff left (ZFBZ / is_deleted) and are not registered
    assert sorted(r["staff_key"] for r in rows) == sorted(k for (k,) in active)
    assert sum(r.sent for r in runs) == len(rows) and all(r.sent == 0 for r in again)
    assert {r["sex_code"] for r in rows} <= {"1", "2"} and all(r["title_code"][:2] in ("23", "24") for r in rows)
    doctors = [r for r in rows if r["staff_id"].startswith("D")]
    assert doctors and {r["practice_category"] for r in doctors} <= {"1", "2", "3", "4"}
    assert all(r["dept_name"] for r in rows)  # department names from the HIS code dictionaries


def test_person_registration_uses_golden_records_and_its_identifier_contract(county):
    f = feed("person_registration")
    org = county.orgs[0]
    with Warehouse(county.url) as wh:
        # the MPI linked two local registrations of one person at this institution to one golden record
        a, b = wh.query("SELECT patient_key FROM cdr.cdr__patient WHERE org_code = ? ORDER BY 1 LIMIT 2", [org])
        # ... and the same person at a second institution: one line per institution, each with its own records
        c = wh.query("SELECT patient_key FROM cdr.cdr__patient WHERE org_code = ? ORDER BY 1 LIMIT 1", [county.orgs[1]])
        wh.execute(
            "UPDATE cdr.cdr__patient SET empi_id = 'E000000001' WHERE patient_key IN (?, ?, ?)", [a[0], b[0], c[0][0]]
        )
        wh.execute(
            "INSERT INTO mpi.person (empi_id, status, name, sex_code, birth_date, id_no, phone, address) "
            "VALUES ('E000000001', 'active', '金秀英', '2', DATE '1970-05-04', '410182197005041228', "
            "'13911112222', '河南省郑州市荥阳市索河街道一号院')"
        )
        runs = [run_feed(wh, f, _box(county), o, PERIOD, county.data_dir) for o in county.orgs]
        phones = {r[0] for r in wh.query("SELECT phone FROM cdr.cdr__patient WHERE phone IS NOT NULL")}
        ids = {r[0] for r in wh.query("SELECT id_no FROM cdr.cdr__patient WHERE id_no IS NOT NULL")}
        patients = wh.scalar("SELECT count(*) FROM cdr.cdr__patient")
        held = wh.scalar("SELECT count(DISTINCT record_key) FROM feeds.exclusion WHERE feed = ?", [f.name])
        lines = [json.loads(x) for p in _files(wh, f.name) for x in p.read_text(encoding="utf-8").splitlines()]
    golden = sorted((x for x in lines if x["golden"]), key=lambda x: x["org_code"] != org)
    assert [(x["org_code"], x["empi_id"], x["local_records"]) for x in golden] == [
        (org, "E000000001", 2),
        (county.orgs[1], "E000000001", 1),
    ]
    assert golden[0]["id_no"] == "410182197005041228" and golden[0]["name"] == "金秀英"  # clear per the contract
    assert golden[0]["phone"] == "139****2222" and golden[0]["address"] == "河南省郑州市荥阳市****"
    assert len(lines) == patients - 1 - held == sum(r.sent for r in runs)  # one line per person, two merged
    assert len({(x["org_code"], x["person_key"]) for x in lines}) == len(lines)
    assert not {x["phone"] for x in lines} & phones  # phones masked
    assert {x["id_no"] for x in lines if not x["golden"]} - {None} <= ids  # 身份证号 in clear: the index matches on it


def test_facility_registration_from_the_institution_registry(county):
    f = feed("facility_registration")
    with Warehouse(county.url) as wh:
        runs = [run_feed(wh, f, _box(county), org, PERIOD, county.data_dir) for org in county.orgs]
        again = [run_feed(wh, f, _box(county), org, PERIOD, county.data_dir) for org in county.orgs]
        rows = [r for p in _files(wh, f.name) for r in csv.DictReader(io.StringIO(p.read_text(encoding="utf-8-sig")))]
    expected = {i.org_code: i for i in county.config.institutions}
    assert sorted(r["org_code"] for r in rows) == sorted(expected)  # each institution registers itself, once
    for r in rows:
        inst = expected[r["org_code"]]
        assert (r["name"], r["type"], r["grade"], int(r["beds"])) == (inst.name, inst.type, inst.grade, inst.beds)
    assert sum(r.sent for r in runs) == len(rows) and all(r.sent == 0 for r in again)  # unchanged: not re-sent
