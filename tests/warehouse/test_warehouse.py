"""Warehouse layer on DuckDB and PostgreSQL: URLs, DDL, bulk load, raw append semantics, transactions."""

from __future__ import annotations

from datetime import datetime

import polars as pl
import pytest

from warehouse import Warehouse, WarehouseError, append_raw, ensure_core, parse_url
from warehouse.ddl import contracts


def test_parse_url_variants(tmp_path):
    duck = parse_url(f"duckdb:///{tmp_path}/w.duckdb")
    assert duck.dialect == "duckdb" and duck.path == tmp_path / "w.duckdb"
    pg = parse_url("postgresql://alice:s3cret@db.example:6543/hutong")
    assert (pg.dialect, pg.host, pg.port, pg.user, pg.password, pg.database) == (
        "postgres", "db.example", 6543, "alice", "s3cret", "hutong")  # fmt: skip
    assert "s3cret" not in pg.display
    with pytest.raises(WarehouseError, match="not supported"):
        parse_url("mysql://root@localhost/x")
    with pytest.raises(WarehouseError, match="names no database"):
        parse_url("postgresql://postgres@127.0.0.1:5432")


def test_unreachable_postgres_gives_one_clear_line():
    with pytest.raises(WarehouseError) as info, Warehouse("postgresql://postgres@127.0.0.1:1/nope"):
        pass
    assert "cannot reach PostgreSQL warehouse" in str(info.value)
    assert "HUTONG_WAREHOUSE_URL" in str(info.value)


def test_core_tables_created_idempotently(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        ensure_core(wh)
        for qualified, spec in contracts()["tables"].items():
            assert wh.columns(qualified) == list(spec["columns"]), qualified


def test_bulk_load_round_trips_awkward_values(warehouse_url):
    frame = pl.DataFrame(
        {
            "quarantine_id": ["q1", "q2", "q3"],
            "message": ['引号 "quoted", comma', "", None],
            "origin": ["line1\nline2", "\\N", "tab\there"],
            "original": pl.Series([b"\x00\xff\x1f", b"", None], dtype=pl.Binary),
            "quarantined_at": pl.Series([datetime(2026, 11, 24, 0, 0, 1), None, datetime(1999, 1, 1)]),
        }
    )
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        assert wh.load("ops.quarantine", frame) == 3
        back = wh.query_df(
            "SELECT quarantine_id, message, origin, original, quarantined_at FROM ops.quarantine ORDER BY 1"
        )
    assert back["message"].to_list() == ['引号 "quoted", comma', "", None]
    assert back["origin"].to_list() == ["line1\nline2", "\\N", "tab\there"]
    assert [None if v is None else bytes(v) for v in back["original"].to_list()] == [b"\x00\xff\x1f", b"", None]
    assert back["quarantined_at"].to_list() == frame["quarantined_at"].to_list()


def _batch(names: list[str | None], deleted: list[bool], updated: list[datetime | None]) -> pl.DataFrame:
    n = len(names)
    return pl.DataFrame(
        {
            "patient_id": [str(i) for i in range(n)],
            "name": names,
            "_org_code": ["ORG"] * n,
            "_source_system": ["HIS-A"] * n,
            "_source_key": [f"T:{i}" for i in range(n)],
            "_source_updated_at": pl.Series(updated, dtype=pl.Datetime("us")),
            "_deleted": deleted,
            "_origin": [f"HIS-A:T#{i}" for i in range(n)],
        }
    )


def test_append_raw_dedupes_and_sets_operation(warehouse_url):
    t0, t1 = datetime(2026, 10, 1, 8), datetime(2026, 10, 2, 8)
    first = _batch(["张三", "李四", None], [False, False, False], [t0, t0, None])
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        assert append_raw(wh, "his_patient", first, "b1", t0).rows_loaded == 3
        again = append_raw(wh, "his_patient", first, "b2", t1)
        assert (again.rows_loaded, again.rows_unchanged) == (0, 3)
        changed = _batch(["张三", "李四改", None], [False, False, True], [t0, t1, t1])
        assert append_raw(wh, "his_patient", changed, "b3", t1).rows_loaded == 2
        rows = wh.query("SELECT _source_key, name, _op, _batch_id FROM raw.his_patient ORDER BY _batch_id, _source_key")
        hashes = wh.query("SELECT count(DISTINCT _record_hash), count(*) FROM raw.his_patient")
    assert rows == [
        ("T:0", "张三", "I", "b1"), ("T:1", "李四", "I", "b1"), ("T:2", None, "I", "b1"),
        ("T:1", "李四改", "U", "b3"), ("T:2", None, "D", "b3"),
    ]  # fmt: skip
    assert hashes == [(5, 5)]


def test_append_raw_orders_versions_of_a_key_within_one_batch(warehouse_url):
    """Keys repeated in a batch (window path) land as they would one batch at a time (single-version path)."""
    t0, t1 = datetime(2026, 10, 1, 8), datetime(2026, 10, 2, 8)
    rows = _batch(["甲", "乙", "甲", "丙", "丙"], [False] * 5, [t0, t0, t0, t1, t0]).with_columns(
        pl.Series("_source_key", ["T:0", "T:1", "T:0", "T:2", "T:2"]),
        pl.Series("patient_id", ["0", "1", "0", "2", "2"]),
        pl.Series("_batch_id", ["b1", "b1", "b2", "b2", "b2"]),
    )  # T:0 twice alike (lands once), T:2 in two versions given newest first
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        together = append_raw(wh, "his_patient", rows, "unused", t1)
        assert (together.rows_in, together.rows_loaded, together.loaded_by_batch) == (5, 4, {"b1": 2, "b2": 2})
        query = "SELECT _source_key, name, _op, _record_hash FROM raw.his_patient ORDER BY _source_updated_at, 1"
        landed = wh.query(query)
        wh.execute("DELETE FROM raw.his_patient")
        for i in (0, 1, 4, 3):  # one at a time, oldest version first: the single-version path
            append_raw(wh, "his_patient", rows.slice(i, 1), "b", t1)
        assert wh.query(query) == landed
    assert [(k, n, op) for k, n, op, _ in landed] == [("T:0", "甲", "I"), ("T:1", "乙", "I"), ("T:2", "丙", "I"),
                                                      ("T:2", "丙", "U")]  # fmt: skip


def test_raw_hash_is_the_same_on_both_warehouses(tmp_path, pg_url):
    batch = _batch(["王五", None], [False, True], [datetime(2026, 1, 2, 3, 4, 5), None])
    hashes = []
    for url in (f"duckdb:///{tmp_path}/w.duckdb", pg_url):
        with Warehouse(url) as wh:
            ensure_core(wh)
            append_raw(wh, "his_patient", batch, "b", datetime(2026, 1, 3))
            hashes.append(wh.query("SELECT _record_hash FROM raw.his_patient ORDER BY _source_key"))
    assert hashes[0] == hashes[1]


def test_raw_table_grows_new_payload_columns(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        append_raw(wh, "his_patient", _batch(["甲"], [False], [None]), "b1", datetime(2026, 1, 1))
        wider = _batch(["甲"], [False], [None]).with_columns(pl.lit("13800000000").alias("phone"))
        assert append_raw(wh, "his_patient", wider, "b2", datetime(2026, 1, 1)).rows_loaded == 1
        assert "phone" in wh.columns("raw.his_patient")


def test_transaction_rolls_back_on_error(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        with pytest.raises(RuntimeError), wh.transaction():
            wh.execute("INSERT INTO ops.watermark (org_code, source_system, source_table) VALUES ('o', 's', 't')")
            raise RuntimeError("boom")
        assert wh.count("ops.watermark") == 0


def test_question_mark_inside_literal_is_not_a_parameter(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        assert wh.query("SELECT '?' || ?, '100%'", ["x"]) == [("?x", "100%")]


def test_iter_batches_streams_everything(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        wh.load("ops.watermark", pl.DataFrame({"org_code": [str(i) for i in range(25)], "source_system": "s",
                                               "source_table": "t"}))  # fmt: skip
        sizes = [b.height for b in wh.iter_batches("SELECT * FROM ops.watermark", size=10)]
    assert sizes == [10, 10, 5]


def test_append_raw_new_keys_land_straight_with_their_operation(warehouse_url):
    """A batch of keys raw has not seen, each once (the direct insert): deletes are D, the rest I; rows without a
    batch id take the call's."""
    t0 = datetime(2026, 10, 1, 8)
    batch = _batch(["甲", "乙"], [False, True], [t0, t0]).with_columns(pl.Series("_batch_id", ["b1", None]))
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        result = append_raw(wh, "his_patient", batch, "b2", t0)
        rows = wh.query("SELECT _source_key, _op, _batch_id FROM raw.his_patient ORDER BY _source_key")
    assert (result.rows_loaded, result.loaded_by_batch) == (2, {"b1": 1, "b2": 1})
    assert rows == [("T:0", "I", "b1"), ("T:1", "D", "b2")]


def test_raw_table_created_in_a_rolled_back_transaction_is_created_again(warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        with pytest.raises(RuntimeError), wh.transaction():
            append_raw(wh, "his_patient", _batch(["甲"], [False], [None]), "b1", datetime(2026, 1, 1))
            raise RuntimeError("the group fails after its rows were appended")
        assert not wh.table_exists("raw.his_patient")
        with wh.transaction():
            again = append_raw(wh, "his_patient", _batch(["甲"], [False], [None]), "b2", datetime(2026, 1, 1))
        assert again.rows_loaded == wh.count("raw.his_patient") == 1


def test_whole_record_columns_are_stored_with_zstd_on_duckdb(tmp_path):
    text = "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C1|P|2.5\rPID|1||P1\r" * 40
    batch = _batch(["甲", "乙"], [False, False], [None, None]).with_columns(pl.lit(text).alias("message_text"))
    with Warehouse(f"duckdb:///{tmp_path}/w.duckdb") as wh:
        ensure_core(wh)
        append_raw(wh, "lis_message", batch, "b1", datetime(2026, 1, 1))
        wh.execute("CHECKPOINT")
        kinds = dict(wh.query("SELECT column_name, any_value(compression) FROM pragma_storage_info('raw.lis_message') "
                              "WHERE segment_type = 'VARCHAR' GROUP BY 1"))  # fmt: skip
        assert wh.query("SELECT DISTINCT message_text FROM raw.lis_message") == [(text,)]
    assert "message_text" in contracts()["raw_whole_record_columns"]
    assert kinds["message_text"] == "ZSTD" and kinds["name"] != "ZSTD"


def test_open_transaction_holds_no_batch_rows_on_duckdb(tmp_path, monkeypatch):
    """A drop folder lands many batches in one transaction: once a batch has landed its Arrow rows are freed, not
    kept to the commit (a view made with `register` would keep them in the transaction's catalog undo log)."""
    import gc
    import weakref

    import warehouse.load
    import warehouse.raw

    tables: list[weakref.ref[object]] = []
    real = warehouse.load.over_arrow

    def watched(wh: Warehouse, name: str, table: object):  # type: ignore[no-untyped-def]
        tables.append(weakref.ref(table))
        return real(wh, name, table)

    monkeypatch.setattr(warehouse.raw, "over_arrow", watched)
    monkeypatch.setattr(warehouse.load, "over_arrow", watched)
    with Warehouse(f"duckdb:///{tmp_path}/w.duckdb") as wh:
        ensure_core(wh)
        with wh.transaction():
            for n in range(3):
                append_raw(wh, "his_patient", _batch([f"甲{n}", "乙"], [False, False], [None, None]), f"b{n}",
                           datetime(2026, 1, 1))  # fmt: skip
            wh.load("ops.quarantine", pl.DataFrame({"quarantine_id": ["q1"], "message": ["m"]}))
            gc.collect()
            assert len(tables) == 4 and all(ref() is None for ref in tables)
        assert wh.count("raw.his_patient") == 4
