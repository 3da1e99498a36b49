"""health_record (WS 365): one longitudinal record per EMPI id, services and encounters gathered under it, on both
warehouses; checked against the ground truth of who each source record belongs to."""

from __future__ import annotations

import csv
from collections import Counter

from hutong import stages
from hutong.dbt_runner import run_dbt
from tests.conftest import write_config
from tests.dbt.truth_xref import fill_xref_from_truth
from warehouse import Warehouse

SHORTS = ("RMYY", "QLWSY")  # a hospital (encounters) and a township centre (public-health exports)


def _owner(truth) -> dict[tuple[str, str, str], str]:
    with (truth / "source_records.csv").open(encoding="utf-8") as handle:
        return {(r["org_code"], r["entity"], r["local_key"]): "E" + r["person_id"] for r in csv.DictReader(handle)}


def test_one_record_per_empi_id_with_services_and_encounters(tmp_path, warehouse_url):
    config = write_config(tmp_path, warehouse_url, shorts=SHORTS, synthetic_size="tiny")
    stages.synth(config, "tiny", 7)
    stages.ingest(config)
    stages.reference_tables(config)
    truth = config.data_dir / "truth"
    with Warehouse(warehouse_url) as wh:
        fill_xref_from_truth(wh, truth)
        # one health record the MPI has not linked yet: it must stay visible without an EMPI id
        unlinked = wh.query("SELECT _org_code, record_no FROM raw.ph_health_record ORDER BY record_no LIMIT 1")[0]
        wh.execute("DELETE FROM mpi.xref WHERE org_code = ? AND source_system = 'PH' AND local_id = ?", list(unlinked))
    build = ["build", "--select", "+health_record", "--indirect-selection", "cautious"]
    run_dbt(build, warehouse_url, target_path=tmp_path / "dbt_target")
    owner = _owner(truth)
    with Warehouse(warehouse_url) as wh:
        people = {r["empi_id"]: r for r in wh.query_dicts("SELECT * FROM health_record.hr__person")}
        records = wh.query("SELECT DISTINCT _org_code, record_no FROM raw.ph_health_record")
        followups = wh.query("SELECT DISTINCT _org_code, record_no, visit_date FROM raw.ph_hypertension_followup "
                             "WHERE visit_date IS NOT NULL")  # fmt: skip
        stays = wh.query(  # live stays whose patient the HIS knows (orphans have no EMPI id)
            "SELECT e._org_code, e.encounter_id FROM raw.his_encounter AS e WHERE e.encounter_type = 'ZY' "
            "AND e.patient_id IN (SELECT patient_id FROM raw.his_patient AS p WHERE p._org_code = e._org_code) "
            "GROUP BY e._org_code, e.encounter_id HAVING max(CASE WHEN e._op = 'D' THEN 1 ELSE 0 END) = 0"
        )
        enrolment = {(r[0], r[1]): r[2] for r in wh.query(
            "SELECT org_code, record_no, empi_id FROM health_record.hr__enrolment")}  # fmt: skip
    assert len(people) == len(set(people)) and None not in people
    linked = {owner[(o, "health_record", n)] for o, n in records if (o, n) != tuple(unlinked)}
    assert {e for e, r in people.items() if r["has_health_record"]} == linked
    assert enrolment[tuple(unlinked)] is None  # kept, with its EMPI id still to come
    # hypertension follow-ups (one per record and day) land on the right resident
    expected = Counter(owner[(o, "health_record", n)] for o, n, _ in followups if (o, n) != tuple(unlinked))
    found = {e: r["hypertension_followups"] for e, r in people.items() if r["hypertension_followups"]}
    assert expected and found == expected
    # inpatient stays of the hospital are counted under the patient the truth says they belong to
    stay_owner = Counter(owner[(o, "encounter", k)] for o, k in stays)
    assert stays and {e: r["inpatient_stays"] for e, r in people.items() if r["inpatient_stays"]} == stay_owner
    assert not any(r["maternal_care_available"] for r in people.values())  # no maternal source in this county
