"""The HIS page readers: connectorx (MariaDB fast path) and SQLAlchemy land the same raw rows; a kill mid-batch
loses and duplicates nothing; the vectorised page mapping keeps the row-by-row semantics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from connectors.his import ingest_institution, load_vendor
from connectors.his_mapping import parse_timestamp, to_frame
from tests.conftest import MARIADB
from tests.his_tables import execute, scratch_mariadb, write_tables
from warehouse import Warehouse, ensure_core

RAW = ("his_patient", "his_encounter", "his_prescription", "his_code_dict")


@pytest.fixture
def mariadb_his() -> Iterator[str]:
    """A MariaDB database with both vendors' hand-made tables plus awkward rows (dropped afterwards)."""
    with scratch_mariadb(MARIADB) as url:
        write_tables(url, "vendor_b")  # DATE, DATETIME and DECIMAL columns
        write_tables(url, "vendor_a")  # text columns, a keyless patient
        execute(url, "INSERT INTO GY_BRXX (BRID, BRXM, GXSJ, ZFBZ) VALUES ('A0100', ' 空格 ', ' 2026-10-20 08:00', "
                     "'1'), ('A0101', NULL, '2026-10-20T08:00:00', NULL), ('A0102', '反斜杠\\\\''引号', NULL, '0'), "
                     "('  ', '空白主键', '2026-10-21 08:00:00', '0'), ('A0103', 'x', '2026-1-5 1:00:00', '0'), "
                     "('A0104', 'y', 'not a time', '0')")  # fmt: skip
        execute(url, "INSERT INTO prescription (rx_id, visit_id, patient_id, drug_code, quantity, unit_price, amount, "
                     "prescribed_at, last_modified, is_deleted) VALUES ('R1', 'V1', 'B0001', 'D1', 2, 18.5, 37, "
                     "'2026-10-05 10:01:00', '2026-10-05 10:02:00', '0'), ('R2', 'V1', 'B0001', 'D2', NULL, 0.05, "
                     "1234567.8, NULL, NULL, '1')")  # fmt: skip
        execute(url, "INSERT INTO code_dict (category, code, name) VALUES ('dept', '01', '全科'), "
                     "('dept', '02', '外科')")  # fmt: skip
        yield url


def _landed(wh: Warehouse) -> dict[str, pl.DataFrame]:
    """Every raw HIS table, the quarantine and the watermarks, without batch ids and load times."""
    out = {}
    for table in RAW:
        frame = wh.query_df(f"SELECT * FROM raw.{table}").drop("_batch_id", "_ingested_at")
        out[table] = frame.sort(frame.columns, nulls_last=True)
    out["quarantine"] = wh.query_df("SELECT origin, error_code, message, original FROM ops.quarantine ORDER BY origin")
    out["watermark"] = wh.query_df(
        "SELECT source_system, source_table, watermark_ts, watermark_key FROM ops.watermark ORDER BY 1, 2"
    )
    return out


def _pull(source: str, tmp_path: Path, reader: str, **options: object) -> dict[str, pl.DataFrame]:
    """Both vendors pulled from `source` into a new DuckDB warehouse with one reader and its options."""
    with Warehouse(f"duckdb:///{tmp_path / uuid.uuid4().hex}.duckdb") as wh:
        ensure_core(wh)
        for vendor in ("vendor_a", "vendor_b"):
            summary = ingest_institution(wh, f"ORG-{vendor[-1].upper()}", source, vendor, reader=reader,
                                         **options)  # type: ignore[arg-type]  # fmt: skip
            assert summary.rows_in == summary.rows_loaded + summary.rows_unchanged + summary.rows_quarantined
        return _landed(wh)


@pytest.mark.mariadb
def test_connectorx_reader_lands_what_the_sqlalchemy_reader_lands(mariadb_his, tmp_path):
    reference = _pull(mariadb_his, tmp_path, "sqlalchemy", batch_size=3)
    assert reference["his_patient"].height == 15 and reference["quarantine"].height == 2  # " 2026-…" landed too
    assert sorted(reference["his_prescription"]["unit_price"]) == ["0.05", "18.50"]  # DECIMAL as text
    # streamed and cut into pages, one LIMIT query per page (rate limit), one page per table
    for options in ({"batch_size": 3}, {"batch_size": 4, "max_rows_per_second": 1e9}, {"batch_size": 20_000}):
        fast = _pull(mariadb_his, tmp_path, "connectorx", **options)
        for name, frame in reference.items():
            assert fast[name].equals(frame, null_equal=True), (name, options)


@pytest.mark.mariadb
def test_connectorx_incremental_pull_sees_updates_and_deletes(mariadb_his, warehouse_url):
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        first = ingest_institution(wh, "ORG-B", mariadb_his, "vendor_b", batch_size=2, reader="connectorx")
        assert first.rows_loaded == 9 and first.batches >= 5
        assert ingest_institution(wh, "ORG-B", mariadb_his, "vendor_b", reader="connectorx").rows_in == 2  # dict
        execute(mariadb_his, "UPDATE patient SET is_deleted = '1', last_modified = '2026-11-02 00:00:00' "
                             "WHERE patient_id = 'B0003'")  # fmt: skip
        again = ingest_institution(wh, "ORG-B", mariadb_his, "vendor_b", reader="connectorx")
        assert (again.rows_in, again.rows_loaded) == (3, 1)
        assert wh.query("SELECT _op FROM raw.his_patient WHERE patient_id = 'B0003' ORDER BY _source_updated_at") == [
            ("I",), ("D",)]  # fmt: skip


def test_unreachable_mariadb_is_a_source_error(warehouse_url):
    from connectors.his import SourceError

    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        with pytest.raises(SourceError, match="cannot read HIS"):
            ingest_institution(wh, "ORG-X", "mysql+pymysql://root@127.0.0.1:1/nowhere", "vendor_b")


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import connectors.his as his
    from warehouse import Warehouse, ensure_core

    real_append, calls = his.append_raw, []
    def dying_append(wh, table, frame, batch_id, ingested_at):
        result = real_append(wh, table, frame, batch_id, ingested_at)
        calls.append(table)
        if len(calls) == 3:  # inside the third landing's transaction: rows appended, nothing committed
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    his.append_raw = dying_append
    with Warehouse(sys.argv[1]) as wh:
        ensure_core(wh)
        his.ingest_institution(wh, "ORG-A", sys.argv[2], "vendor_a", batch_size=2)
    """
)


@pytest.mark.mariadb
def test_killed_mid_page_then_rerun_loses_nothing_and_duplicates_nothing(mariadb_his, tmp_path, warehouse_url):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]), *sys.path]),
           "HUTONG_HIS_LAND_ROWS": "4"}  # two pages of two rows per transaction  # fmt: skip
    done = subprocess.run([sys.executable, "-c", KILLER, warehouse_url, mariadb_his], env=env, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    with Warehouse(warehouse_url) as wh:
        partial = wh.count("raw.his_patient")
        assert 0 < partial <= 8 and wh.count("ops.ingest_batch") == 4  # two landings of two pages committed
        ingest_institution(wh, "ORG-A", mariadb_his, "vendor_a", batch_size=2)
        assert wh.count("raw.his_patient") == 12
        resumed = _landed(wh)
        assert wh.count("ops.ingest_batch", "rows_in <> rows_loaded + rows_unchanged + rows_quarantined") == 0
    with Warehouse(f"duckdb:///{tmp_path / 'clean.duckdb'}") as wh:
        ensure_core(wh)
        ingest_institution(wh, "ORG-A", mariadb_his, "vendor_a", batch_size=2)
        clean = _landed(wh)
    for name in ("his_patient", "his_encounter", "quarantine", "watermark"):
        assert resumed[name].equals(clean[name], null_equal=True), name


def test_page_mapping_keeps_row_by_row_semantics():
    table = next(t for t in load_vendor("vendor_a").tables if t.name == "GY_BRXX")
    times = ["2026-10-05 10:00:00", " 2026-10-05 10:00:00", "2026-10-05T10:00:00", "2026-1-5 1:00:00",
             "2026-10-05 10:00:00.250", "20261005", "garbage", None, "2026-02-30 10:00:00"]  # fmt: skip
    keys = ["A1", "A2", "A3", "A4", "A5", "A6", "\u3000", None, "A9"]  # an ideographic space is blank too
    columns = {c: [None] * len(keys) for c in table.selected} | {"BRID": keys, "GXSJ": times, "BRXM": ["\x1c姓名"] * 9,
                                                                 "ZFBZ": ["1", "0"] * 4 + [None]}  # fmt: skip
    page = pl.DataFrame(columns, schema=dict.fromkeys(columns, pl.String)).with_columns(hutong_wm=pl.lit("x"))
    frame, quarantined = to_frame(page, table, "ORG", "HIS-A")
    kept = [i for i, k in enumerate(keys) if k is not None and k.strip()]
    assert frame["_source_key"].to_list() == [f"GY_BRXX:{keys[i]}" for i in kept]
    assert frame["_source_updated_at"].to_list() == [parse_timestamp(times[i]) for i in kept]
    assert frame["_deleted"].to_list() == [i % 2 == 0 and i < 8 for i in kept]  # ZFBZ NULL: not deleted
    assert frame["name"].to_list() == ["\x1c姓名"] * len(kept) and frame["_origin"][0] == "HIS-A:GY_BRXX#A1"
    assert [(q.origin, q.message) for q in quarantined] == [("HIS-A:GY_BRXX#\u3000", "GY_BRXX.BRID is empty"),
                                                            ("HIS-A:GY_BRXX#", "GY_BRXX.BRID is empty")]  # fmt: skip
    assert b'"GXSJ": "garbage"' in quarantined[0].original and b"hutong_wm" not in quarantined[0].original
