"""Great Expectations: the stored suites are what the catalog generates, and GE (pandas on DuckDB, GE's SQL engine
on PostgreSQL) counts exactly what the in-warehouse SQL counts — evaluated and unexpected — for every check type."""

from __future__ import annotations

import json

import pytest

from quality.catalog import datasets_of, load_catalog
from quality.ge import SUITES_DIR, suite_json, validate_pandas, validate_postgres
from quality.relation import relation_sql, table_columns
from quality.runner import dataset_present, run_id_for
from tests.quality.conftest import DAY
from warehouse import Warehouse

pytestmark = pytest.mark.xdist_group("quality_county")


def test_stored_suites_are_up_to_date():
    groups = datasets_of(load_catalog())
    assert {p.stem for p in SUITES_DIR.glob("*.json")} == set(groups)
    for name, rules in groups.items():
        stored = (SUITES_DIR / f"{name}.json").read_text(encoding="utf-8")
        assert stored == suite_json(rules), f"quality/suites/{name}.json is stale: run `hutong quality --suites`"
        doc = json.loads(stored)
        assert [e["meta"]["rule_id"] for e in doc["expectations"]] == [r.id for r in rules]
        assert all(e["type"].startswith("expect_") for e in doc["expectations"])


def test_warehouse_result_equals_great_expectations(qcounty):
    rules = load_catalog()
    compared: dict[str, int] = {}
    with Warehouse(qcounty.url) as wh:
        ours = {
            r: (int(e), int(f))
            for r, e, f in wh.query(
                "SELECT rule_id, sum(evaluated), sum(failed) FROM quality.check_result WHERE run_id = ? "
                "AND status = 'evaluated' GROUP BY rule_id",
                [run_id_for(DAY)],
            )
        }
        for group in datasets_of(rules).values():
            ds = group[0].dataset
            if not dataset_present(wh, ds.table):
                continue
            sql, _ = relation_sql(ds, group, table_columns(wh, ds.table), wh.dialect)
            if wh.dialect == "postgres":
                theirs = validate_postgres(qcounty.url, sql, group)
            else:
                theirs = validate_pandas(wh.conn.execute(sql).df(), group)
            by_rule = {r.id: r for r in group}
            for outcome in theirs:
                assert (outcome.evaluated, outcome.failed) == ours[outcome.rule_id], outcome.rule_id
                check = by_rule[outcome.rule_id].check_type
                compared[check] = compared.get(check, 0) + outcome.failed
    used = {r.check_type for r in rules} - {"quarantined"}
    assert used <= set(compared)  # every check type was compared (quarantine: none in the tiny county)
    assert sum(compared.values()) > 30  # and failures were among them
    assert {c for c, n in compared.items() if n} >= {"required", "in_map", "id_check_digit", "id_sex", "id_birth",
                                                     "duplicate", "timeliness"}  # fmt: skip
