"""The set-based runner on a hand-made raw table, on DuckDB and PostgreSQL: the latest version per (institution,
source key) is what the row_number window keeps (ties on the ingest time broken by batch, deletions dropped, other
institutions filtered out), and one run writes every failing record of every rule once."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from quality.catalog import Dataset, Rule
from quality.relation import base_sql, org_filter, table_columns
from quality.runner import run_rules
from warehouse import Warehouse, ensure_core

DS = Dataset(name="t_visit", table="raw.t_visit", columns=("visit_id", "code"))
T0, T1 = datetime(2026, 10, 1, 1), datetime(2026, 10, 2, 1)
# (org, source key, batch, ingested at, op, visit_id, code)
ROWS = [
    ("A", "k1", "b1", T0, "I", "v1", "x"),  # one version
    ("A", "k2", "b1", T0, "I", "v2", "x"),  # updated later: the later version counts
    ("A", "k2", "b2", T1, "U", "v2", "BAD"),
    ("A", "k3", "b1", T0, "I", "v3", "x"),  # same ingest time: the higher batch wins
    ("A", "k3", "b9", T0, "U", "v3", "y"),
    ("A", "k4", "b1", T0, "I", "v4", "x"),  # deleted: gone
    ("A", "k4", "b2", T1, "D", "v4", "x"),
    ("B", "k1", "b1", T0, "I", "w1", "  "),  # same key at another institution: its own record; blank = NULL
    ("C", "k1", "b1", T0, "I", "z1", "BAD"),  # not asked for
]
RULES = (
    Rule("T-CODE-REQ", DS, "required", "completeness", "error", "code is present", params={"column": "code"}),
    Rule("T-CODE-SET", DS, "in_set", "accuracy", "error", "code in domain", params={"column": "code",
                                                                                     "values": ["x", "y"]}),
)  # fmt: skip


def _load(wh: Warehouse) -> None:
    ensure_core(wh)
    wh.execute("DROP TABLE IF EXISTS raw.t_visit")
    wh.execute(
        "CREATE TABLE raw.t_visit (_org_code VARCHAR, _source_key VARCHAR, _batch_id VARCHAR, _ingested_at TIMESTAMP, "
        "_op VARCHAR, _origin VARCHAR, visit_id VARCHAR, code VARCHAR, _source_updated_at TIMESTAMP, "
        "_record_hash VARCHAR)"
    )
    names = ["_org_code", "_source_key", "_batch_id", "_ingested_at", "_op", "visit_id", "code"]
    frame = pl.DataFrame(ROWS, schema=names, orient="row").with_columns(
        (pl.col("_source_key") + "@" + pl.col("_batch_id")).alias("_origin")
    )
    wh.load("raw.t_visit", frame)


def test_latest_version_equals_the_window_and_records_are_written_once(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        _load(wh)
        columns = table_columns(wh, DS.table)
        relation = base_sql(DS, columns, org_filter(DS, ["A", "B"]))
        ours = wh.query(f"SELECT _org_code, _source_key, _batch_id, code FROM ({relation}) b ORDER BY 1, 2")
        window = wh.query(
            "SELECT _org_code, _source_key, _batch_id, NULLIF(trim(code), '') FROM (SELECT t.*, row_number() OVER "
            "(PARTITION BY _org_code, _source_key ORDER BY _ingested_at DESC, _batch_id DESC) AS rn FROM raw.t_visit t "
            "WHERE _org_code IN ('A', 'B')) v WHERE rn = 1 AND _op <> 'D' ORDER BY 1, 2"
        )
        assert ours == window
        assert ours == [
            ("A", "k1", "b1", "x"),
            ("A", "k2", "b2", "BAD"),
            ("A", "k3", "b9", "y"),
            ("B", "k1", "b1", None),
        ]

        outcomes = run_rules(wh, ["A", "B"], date(2026, 10, 2), RULES)
        assert {(o.rule_id, o.org_code): (o.evaluated, o.failed) for o in outcomes} == {
            ("T-CODE-REQ", "A"): (3, 0),
            ("T-CODE-REQ", "B"): (1, 1),
            ("T-CODE-SET", "A"): (3, 1),
            ("T-CODE-SET", "B"): (1, 0),  # NULL is not judged by in_set
        }
        problems = wh.query(
            "SELECT org_code, rule_id, record_key, raw_origin, batch_id, detail FROM quality.problem_record "
            "WHERE dataset = 't_visit' ORDER BY 1, 2"
        )
        assert problems == [
            ("A", "T-CODE-SET", "k2", "k2@b2", "b2", "code in domain"),
            ("B", "T-CODE-REQ", "k1", "k1@b1", "b1", "code is present"),
        ]
        run_rules(wh, ["A", "B"], date(2026, 10, 2), RULES)  # a re-run replaces the day's results
        assert wh.scalar("SELECT count(*) FROM quality.problem_record WHERE dataset = 't_visit'") == 2
