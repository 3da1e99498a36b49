"""The current-version table a raw data set's rules read (quality/current.py), on DuckDB and PostgreSQL: built once,
then kept by merging only new or grown batches, it always equals the latest version per (institution, source key)
derived from the whole of raw — updates, deletes, several versions in one batch, new columns, a batch that grows."""

from __future__ import annotations

from datetime import date, datetime

import polars as pl

from quality.catalog import Dataset, Rule
from quality.current import LEDGER, current_table, sync_current
from quality.relation import latest_sql, table_columns
from quality.runner import run_rules
from warehouse import Warehouse, ensure_core
from warehouse.raw import append_raw

DS = Dataset(name="t_patient", table="raw.t_patient")
RULE = Rule("T-NAME-REQ", DS, "required", "completeness", "error", "name is present", params={"column": "name"})


def _batch(rows: list[tuple], extra: str | None = None) -> pl.DataFrame:
    """rows: (org, key, name, updated_at, deleted)."""
    frame = pl.DataFrame(
        rows, schema=["_org_code", "_source_key", "name", "_source_updated_at", "_deleted"], orient="row"
    ).with_columns(
        pl.lit("HIS").alias("_source_system"),
        (pl.col("_org_code") + "#" + pl.col("_source_key") + "#" + pl.col("name").fill_null("-")).alias("_origin"),
    )
    return frame.with_columns(pl.col("name").alias(extra)) if extra else frame


def _state(wh: Warehouse, source: str) -> list[tuple]:
    return sorted(
        wh.query(f"SELECT _org_code, _source_key, name, _batch_id FROM ({source}) s"), key=lambda r: (r[0], r[1])
    )


def _derived(wh: Warehouse) -> list[tuple]:
    return _state(wh, f"SELECT * FROM ({latest_sql(DS)}) v WHERE _op <> 'D'")


def _sync(wh: Warehouse) -> str:
    with wh.transaction():
        return sync_current(wh, DS, table_columns(wh, DS.table)).mode


def test_current_table_is_merged_from_new_batches_and_equals_raw(warehouse_url):
    t = [datetime(2026, 10, d, 9) for d in range(1, 8)]
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        wh.execute("DROP TABLE IF EXISTS raw.t_patient")
        rows = [("A", f"k{i}", f"n{i}", t[0], False) for i in range(1, 7)] + [("B", "k1", "b1", t[0], False)]
        append_raw(wh, "t_patient", _batch(rows), "b1", t[0])
        assert _sync(wh) == "rebuilt"
        assert _state(wh, f"SELECT * FROM {current_table(DS)}") == _derived(wh)
        assert _sync(wh) == "unchanged"

        # an update, a delete, a new key, and two versions of one key landed together (the later update wins)
        append_raw(wh, "t_patient", _batch([
            ("A", "k1", "n1-new", t[1], False),
            ("A", "k2", "n2", t[1], True),
            ("A", "k7", "n7", t[1], False),
            ("B", "k2", "late", t[2], False),
            ("B", "k2", "early", t[1], False),
        ]), "b2", t[1])  # fmt: skip
        assert _sync(wh) == "merged"
        current = _state(wh, f"SELECT * FROM {current_table(DS)}")
        assert current == _derived(wh)
        assert ("A", "k1", "n1-new", "b2") in current and ("B", "k2", "late", "b2") in current
        assert not any(r[:2] == ("A", "k2") for r in current)

        # the deleted key comes back; raw gains a column
        append_raw(wh, "t_patient", _batch([("A", "k2", "again", t[3], False)], extra="phone"), "b3", t[3])
        assert _sync(wh) == "merged"
        assert "phone" in wh.columns(current_table(DS))
        assert _state(wh, f"SELECT * FROM {current_table(DS)}") == _derived(wh)

        # a batch id that lands more rows later (a second append of the same ledger batch) is merged again
        append_raw(wh, "t_patient", _batch([("A", "k3", "n3-b3", t[4], False)]), "b3", t[4])
        assert _sync(wh) == "merged"
        assert _state(wh, f"SELECT * FROM {current_table(DS)}") == _derived(wh)
        assert wh.query(f"SELECT raw_rows FROM {LEDGER} WHERE dataset = 't_patient' AND batch_id = 'b3'") == [(2,)]
        assert _sync(wh) == "unchanged"

        # an older batch grows after a later one landed: its keys' later versions elsewhere still win (all raw read)
        append_raw(wh, "t_patient", _batch([("A", "k1", "n1-b4", t[5], False)]), "b4", t[5])
        assert _sync(wh) == "merged"
        append_raw(wh, "t_patient", _batch([("A", "k6", "n6-b2", t[6], False)]), "b2", t[6])
        assert _sync(wh) == "merged"
        current = _state(wh, f"SELECT * FROM {current_table(DS)}")
        assert current == _derived(wh) and ("A", "k1", "n1-b4", "b4") in current


def test_rules_read_the_current_table_and_rerun_after_new_batches(warehouse_url):
    t0, t1 = datetime(2026, 10, 1, 9), datetime(2026, 10, 2, 9)
    day = date(2026, 10, 2)
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        wh.execute("DROP TABLE IF EXISTS raw.t_patient")
        append_raw(wh, "t_patient", _batch([("A", "k1", None, t0, False), ("A", "k2", "n2", t0, False)]), "b1", t0)
        first = run_rules(wh, ["A"], day, (RULE,))
        assert [(o.evaluated, o.failed) for o in first] == [(2, 1)]
        append_raw(wh, "t_patient", _batch([("A", "k1", "fixed", t1, False), ("A", "k3", None, t1, False)]), "b2", t1)
        again = run_rules(wh, ["A"], day, (RULE,))
        assert [(o.evaluated, o.failed) for o in again] == [(3, 1)]
        assert wh.query("SELECT record_key, batch_id FROM quality.problem_record WHERE rule_id = 'T-NAME-REQ'") == [
            ("k3", "b2")
        ]


def test_current_table_leaves_out_the_whole_record_kept_for_audit(warehouse_url):
    """raw.*.message_text (contracts `raw_whole_record_columns`) stays in raw only: no rule judges it, and the current
    table would hold a second copy; a table an earlier version built with it loses it on the next run."""
    t0, t1 = datetime(2026, 10, 1, 9), datetime(2026, 10, 2, 9)
    day = date(2026, 10, 2)
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        wh.execute("DROP TABLE IF EXISTS raw.t_patient")
        append_raw(wh, "t_patient", _batch([("A", "k1", None, t0, False)], extra="message_text"), "b1", t0)
        with wh.transaction():  # as an earlier version built it: every raw column
            sync_current(wh, DS, table_columns(wh, DS.table))
        assert "message_text" in wh.columns(current_table(DS))
        append_raw(wh, "t_patient", _batch([("A", "k2", "n2", t1, False)], extra="message_text"), "b2", t1)
        outcomes = run_rules(wh, ["A"], day, (RULE,))
        columns = wh.columns(current_table(DS))
        assert "message_text" not in columns and "name" in columns
        assert [(o.evaluated, o.failed) for o in outcomes] == [(2, 1)]
        assert _state(wh, f"SELECT * FROM {current_table(DS)}") == _derived(wh)
        assert "message_text" in wh.columns("raw.t_patient")
