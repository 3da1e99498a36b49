"""Stored row-local rule outcomes (quality/flags.py), on DuckDB and PostgreSQL: flags kept by merging new batches
give the same results and problem records as a rebuild from raw after updates, deletes, re-inserts and rule
catalog changes (a changed or new rule recomputes the stored flags), and equal the read-only derivation from raw."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

import polars as pl
import pytest

from quality import flags
from quality.catalog import Dataset, Rule
from quality.current import LEDGER, current_table
from quality.flags import flag_columns, flags_table, stored_rules
from quality.runner import evaluate, run_id_for, run_rules
from warehouse import Warehouse, ensure_core
from warehouse.raw import append_raw

DS = Dataset(name="t_flagged", table="raw.t_flagged")
DAY = date(2026, 10, 9)
ORGS = ["A", "B"]
T = [datetime(2026, 10, d, 9) for d in range(1, 8)]
NAME = Rule("T-NAME-REQ", DS, "required", "completeness", "error", "name is present", params={"column": "name"})
CODE = Rule("T-CODE-SET", DS, "in_set", "accuracy", "error", "code in domain", params={"column": "code",
                                                                                   "values": ["x", "y"]})  # fmt: skip
DUP = Rule("T-DUP", DS, "duplicate", "accuracy", "error", "no duplicate", params={"columns": ["name", "code"]})
REF = Rule("T-REF", DS, "referential", "relatedness", "warning", "name is registered", params={"column": "name",
           "table": "raw.t_flag_ref", "ref_column": "name_id"})  # fmt: skip
RULES = (NAME, CODE, DUP, REF)


def _batch(rows: list[tuple]) -> pl.DataFrame:
    """rows: (org, key, name, code, deleted)."""
    frame = pl.DataFrame(rows, schema=["_org_code", "_source_key", "name", "code", "_deleted"], orient="row")
    return frame.with_columns(
        pl.lit("HIS").alias("_source_system"),
        pl.lit(None, dtype=pl.Datetime("us")).alias("_source_updated_at"),
        (pl.col("_org_code") + "#" + pl.col("_source_key") + "#" + pl.col("name").fill_null("-")).alias("_origin"),
    )


def _refs(wh: Warehouse, names: list[tuple[str, str]], batch: str, at: datetime) -> None:
    """Registered names (org, name) land in the referenced raw table."""
    frame = pl.DataFrame(names, schema=["_org_code", "name_id"], orient="row").with_columns(
        pl.col("name_id").alias("_source_key"),
        pl.lit(False).alias("_deleted"),
        pl.lit("HIS").alias("_source_system"),
        pl.lit(None, dtype=pl.Datetime("us")).alias("_source_updated_at"),
        (pl.lit("ref#") + pl.col("name_id")).alias("_origin"),
    )
    append_raw(wh, "t_flag_ref", frame, batch, at)


def _results(wh: Warehouse) -> tuple[list[tuple], list[tuple]]:
    run = run_id_for(DAY)
    checks = wh.query(
        "SELECT rule_id, org_code, evaluated, failed FROM quality.check_result WHERE run_id = ? ORDER BY 1, 2", [run]
    )
    problems = wh.query(
        "SELECT rule_id, org_code, record_key, raw_origin, batch_id FROM quality.problem_record WHERE run_id = ? "
        "ORDER BY 1, 2, 3",
        [run],
    )
    return [tuple(r) for r in checks], [tuple(r) for r in problems]


def _run(wh: Warehouse, rules: tuple[Rule, ...]) -> tuple[list[tuple], list[tuple]]:
    """Run with the kept tables; then drop them, rebuild from raw and run again: both must agree (returned)."""
    run_rules(wh, ORGS, DAY, rules)
    kept = _results(wh)
    stored = sorted(wh.query(f"SELECT * FROM {flags_table(DS)}"), key=str)
    for table in (current_table(DS), flags_table(DS)):
        wh.execute(f"DROP TABLE IF EXISTS {table}")
    wh.execute(f"DELETE FROM {LEDGER} WHERE dataset = ?", [DS.name])
    run_rules(wh, ORGS, DAY, rules)
    assert _results(wh) == kept
    assert sorted(wh.query(f"SELECT * FROM {flags_table(DS)}"), key=str) == stored
    from_raw = evaluate(wh, list(rules), ORGS)  # read-only, derived from raw without stored flags
    assert {r: (sum(e for (rule, _, e, _f) in kept[0] if rule == r), sum(f for (rule, _, _e, f) in kept[0]
            if rule == r)) for r in from_raw} == from_raw  # fmt: skip
    return kept


def test_flags_stored_at_merge_equal_a_rebuild(warehouse_url, monkeypatch: pytest.MonkeyPatch):
    calls: list[str | None] = []
    spy = flags.store_flags
    monkeypatch.setattr(flags, "store_flags", lambda *a: calls.append(a[-1]) or spy(*a))
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        for table in ("raw.t_flagged", "raw.t_flag_ref", current_table(DS), flags_table(DS)):
            wh.execute(f"DROP TABLE IF EXISTS {table}")
        wh.execute(f"DELETE FROM {LEDGER} WHERE dataset = ?", [DS.name])
        rows = [
            ("A", "k1", None, "x", False),
            ("A", "k2", "n2", "BAD", False),
            ("A", "k3", "n3", "x", False),
            ("A", "k4", "n3", "x", False),
            ("A", "k5", None, "BAD", False),
            ("B", "k1", "b1", "y", False),
        ]
        append_raw(wh, "t_flagged", _batch(rows), "b1", T[0])
        _refs(wh, [("A", "n2"), ("A", "n3"), ("B", "b1")], "r1", T[0])
        checks, problems = _run(wh, RULES)
        assert ("T-NAME-REQ", "A", 5, 2) in checks and ("T-DUP", "A", 5, 1) in checks
        assert ("T-REF", "A", 5, 0) in checks
        assert {p[2] for p in problems if p[0] == "T-CODE-SET"} == {"k2", "k5"}

        # an update fixes one record and breaks another, a failing record is deleted, a new failing key lands
        calls.clear()
        append_raw(wh, "t_flagged", _batch([("A", "k1", "n1", "x", False), ("A", "k3", "n3", "zz", False),
                                            ("A", "k5", None, "BAD", True), ("B", "k2", None, "y", False)]),
                   "b2", T[1])  # fmt: skip
        checks, problems = _run(wh, RULES)
        assert calls[0] not in (None, "")  # the kept run merged: flags computed only for the keys touched
        assert ("T-NAME-REQ", "A", 4, 0) in checks and ("T-CODE-SET", "A", 4, 2) in checks
        assert ("T-DUP", "A", 4, 0) in checks  # k3 changed code: k4 is no longer a duplicate of it
        assert ("T-NAME-REQ", "B", "k2", "B#k2#-", "b2") in problems
        assert ("T-REF", "A", 4, 1) in checks  # n1 is not registered

        # only the referenced table grows: the stored failure passes
        calls.clear()
        _refs(wh, [("A", "n1")], "r2", T[1])
        checks, problems = _run(wh, RULES)
        assert calls[0] not in (None, "")
        assert ("T-REF", "A", 4, 0) in checks

        # the deleted key comes back (now clean)
        append_raw(wh, "t_flagged", _batch([("A", "k5", "n5", "y", False)]), "b3", T[2])
        _refs(wh, [("A", "n5")], "r3", T[2])
        checks, problems = _run(wh, RULES)
        assert ("T-CODE-SET", "A", 5, 2) in checks and not any(p[2] == "k5" and p[1] == "A" for p in problems)

        # a record that sorts first joins k5's group: k5, clean until now, becomes the duplicate
        append_raw(wh, "t_flagged", _batch([("A", "k0", "n5", "y", False)]), "b3b", T[2])
        checks, problems = _run(wh, RULES)
        assert ("T-DUP", "A", "k5", "A#k5#n5", "b3") in problems and ("T-DUP", "A", 6, 1) in checks

        # a changed rule (the domain now admits zz) and a new rule: their stored flags are recomputed
        before = flag_columns(stored_rules(list(RULES), wh.dialect), wh.dialect)
        code = replace(CODE, params={"column": "code", "values": ["x", "y", "zz"]})
        pattern = {"column": "name", "pattern": "^[a-z]"}
        upper = Rule("T-NAME-PAT", DS, "pattern", "accuracy", "warning", "lower case", params=pattern)
        changed = (NAME, code, DUP, REF, upper)
        after = flag_columns(stored_rules(list(changed), wh.dialect), wh.dialect)
        assert after["T-NAME-REQ"] == before["T-NAME-REQ"] and after["T-CODE-SET"] != before["T-CODE-SET"]
        append_raw(wh, "t_flagged", _batch([("B", "k3", "Up", "x", False)]), "b4", T[3])
        calls.clear()
        run_rules(wh, ORGS, DAY, changed)  # the catalog changed: every stored flag recomputed (no merge spy call)
        assert calls == [None]
        assert set(wh.columns(flags_table(DS))) == {*flags.LINEAGE, *after.values()}
        checks, problems = _run(wh, changed)
        assert ("T-CODE-SET", "A", 6, 1) in checks and ("T-NAME-PAT", "B", 3, 1) in checks
        assert ("T-NAME-PAT", "B", "k3", "B#k3#Up", "b4") in problems
