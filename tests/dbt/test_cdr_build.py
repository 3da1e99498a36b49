"""dbt on a tiny synthetic county, on DuckDB and PostgreSQL: `dbt build` passes; every CDR table is keyed to
the EMPI id with lineage; an unmapped local code shows up with its institution; a daily increment (update,
delete, EMPI merge) applied incrementally leaves the incremental CDR models equal to their staging truth, and a
whole next day run incrementally leaves every staging, CDR, health-record and mart row as `--full-refresh` does."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hutong import stages
from hutong.config import PlatformConfig
from hutong.dbt_runner import run_dbt
from tests.dbt.county import county_config, fill_xref, generate
from warehouse import Warehouse

pytestmark = pytest.mark.xdist_group("dbt_county")

RMYY = "12410182424085941C"  # vendor_a (HIS-A) hospital with LIS, PACS and EMR
INCREMENTAL = {  # incremental CDR model → (its key, the staging truth it must equal)
    "cdr__encounter": ("encounter_key", "SELECT encounter_key AS k, _record_hash AS h FROM staging.stg_his__encounter"),
    "cdr__fee": ("fee_key", "SELECT fee_key AS k, _record_hash AS h FROM staging.stg_his__fee"),
    "cdr__lab_result": ("lab_result_key", "SELECT lab_result_key AS k, _record_hash AS h FROM staging.stg_lis__result"),
    "cdr__patient": ("patient_key", "SELECT patient_key AS k, _record_hash AS h FROM staging.stg_his__patient"),
    "cdr__lab_report": ("lab_report_key", "SELECT lab_order_key AS k, _record_hash AS h FROM staging.stg_lis__order"),
    "cdr__order": (
        "order_key",
        "SELECT prescription_key AS k, _record_hash AS h FROM staging.stg_his__prescription "
        "UNION ALL SELECT order_key AS k, _record_hash AS h FROM staging.stg_his__order",
    ),
}


# incremental staging model → its raw table: after an increment it must hold exactly the current rows of raw
STAGING = {"stg_his__encounter": "his_encounter", "stg_his__fee": "his_fee", "stg_his__patient": "his_patient"}
CURRENT_ROWS = """
SELECT _org_code || '|' || _source_key AS k, _record_hash AS h FROM (
    SELECT *, row_number() OVER (PARTITION BY _org_code, _source_key
                                 ORDER BY _source_updated_at DESC NULLS LAST, _ingested_at DESC, _record_hash) AS n
    FROM raw.{table}) AS v
WHERE n = 1 AND _op <> 'D'"""

DBT_SCHEMAS = ("staging", "cdr", "health_record", "marts")
LINKED = ("cdr__patient", "cdr__encounter", "cdr__lab_result", "cdr__imaging_report", "cdr__clinical_document")


@dataclass
class Built:
    url: str
    config: PlatformConfig
    target: Path


@pytest.fixture(scope="session")
def county_sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory)


def _his(config: PlatformConfig, sql: str, params: tuple = ()) -> None:
    with sqlite3.connect(config.data_dir / "sources" / RMYY / "his.sqlite") as con:
        assert con.execute(sql, params).rowcount >= 1


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def built(request: pytest.FixtureRequest, county_sources: Path, tmp_path_factory) -> Iterator[Built]:
    """Ingest with one injected unmapped sex code, link identities from the truth, `dbt build`."""
    tmp = tmp_path_factory.mktemp(f"dbt_{request.param}")
    url = f"duckdb:///{tmp / 'wh.duckdb'}" if request.param == "duckdb" else request.getfixturevalue("module_pg_url")
    config = county_config(tmp, url, county_sources)
    _his(config, "UPDATE GY_BRXX SET XB = 'Q' WHERE BRID = (SELECT min(BRID) FROM GY_BRXX)")
    stages.ingest(config)
    stages.reference_tables(config)  # the marts' institutions and population
    with Warehouse(url) as wh:
        fill_xref(wh, config.data_dir)
    run_dbt(["build"], url, target_path=tmp / "target")
    yield Built(url, config, tmp / "target")


@pytest.fixture(scope="module")
def module_pg_url() -> Iterator[str]:
    import uuid

    import psycopg

    from tests.conftest import PG_ADMIN

    name = f"hutong_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_unmapped_local_code_is_listed_with_its_institution(built: Built) -> None:
    with Warehouse(built.url) as wh:
        rows = wh.query_dicts(
            "SELECT org_code, source_system, domain, local_code, row_count, mapping_status, first_seen_at "
            "FROM cdr.cdr__unmapped_code WHERE local_code = 'Q'"
        )
        patient = wh.query_dicts("SELECT sex_code, sex_source_value FROM cdr.cdr__patient WHERE sex_source_value = 'Q'")
    assert [(r["org_code"], r["source_system"], r["domain"], r["row_count"], r["mapping_status"]) for r in rows] == [
        (RMYY, "HIS-A", "sex", 1, "missing")
    ]
    assert rows[0]["first_seen_at"] is not None
    assert patient == [{"sex_code": None, "sex_source_value": "Q"}]  # kept visible, not silently dropped


def test_cdr_keyed_to_empi_with_codes_and_lineage(built: Built) -> None:
    with Warehouse(built.url) as wh:
        for table in LINKED:
            total, linked, lineage = wh.query(f"SELECT count(*), count(empi_id), count(_origin) FROM cdr.{table}")[0]
            assert total > 0 and lineage == total, table
            assert linked >= 0.9 * total, f"{table}: {linked}/{total} linked to an EMPI id"
        enc = wh.query_dicts(
            "SELECT e.empi_id, p.empi_id AS patient_empi, e.encounter_class_code, e.encounter_class_name, "
            "e.diagnosis_icd10_code, e.diagnosis_icd10_name FROM cdr.cdr__encounter e "
            "JOIN cdr.cdr__patient p ON p.patient_key = e.patient_key"
        )
        results = wh.query_dicts("SELECT item_source_code, loinc_code, loinc_name FROM cdr.cdr__lab_result")
        docs = wh.query("SELECT count(*), count(encounter_key) FROM cdr.cdr__clinical_document")[0]
    assert all(e["empi_id"] == e["patient_empi"] for e in enc)
    assert {e["encounter_class_name"] for e in enc} <= {"门诊", "急诊", "住院"}
    assert all(e["diagnosis_icd10_name"] for e in enc if e["diagnosis_icd10_code"])
    mapped = [r for r in results if r["loinc_code"]]
    assert mapped and all(r["loinc_name"] for r in mapped)
    assert any(r["item_source_code"] == "L0101" and r["loinc_code"] == "6690-2" for r in results)
    assert docs[0] > 0 and docs[1] == docs[0]  # every document found its HIS encounter


def _state(wh: Warehouse) -> dict[str, dict[str, str]]:
    return {m: dict(wh.query(f"SELECT {key}, _record_hash FROM cdr.{m}")) for m, (key, _) in INCREMENTAL.items()}


def test_daily_increment_applies_updates_deletes_and_empi_changes(built: Built) -> None:
    cfg = built.config
    with sqlite3.connect(cfg.data_dir / "sources" / RMYY / "his.sqlite") as con:
        fee_id = con.execute("SELECT min(FYID) FROM SF_FYMX WHERE ZFBZ = '0'").fetchone()[0]
        visit_id = con.execute("SELECT min(GHID) FROM MZ_GHXX WHERE ZFBZ = '0'").fetchone()[0]
        con.execute("UPDATE SF_FYMX SET ZFBZ = '1', GXSJ = '2026-12-01 08:00:00' WHERE FYID = ?", (fee_id,))
        con.execute("UPDATE MZ_GHXX SET KSDM = '0102', KSMC = '外科门诊', GXSJ = '2026-12-01 08:00:00' "
                    "WHERE GHID = ?", (visit_id,))  # fmt: skip
    stages.ingest(cfg, kinds=["his"])
    with Warehouse(built.url) as wh:
        before = _state(wh)
        merged_from, merged_into = wh.query(
            "SELECT min(empi_id), max(empi_id) FROM mpi.xref WHERE org_code = ? AND source_system = 'HIS-A'", [RMYY]
        )[0]
        wh.execute("UPDATE mpi.xref SET empi_id = ? WHERE empi_id = ?", [merged_into, merged_from])  # an MPI merge
    run_dbt(["run", "--select", "staging", "cdr"], built.url, target_path=built.target)
    with Warehouse(built.url) as wh:
        after = _state(wh)
        for model, (_, truth_sql) in INCREMENTAL.items():
            truth = dict(wh.query(truth_sql))
            assert after[model] == truth, model
        for model, table in STAGING.items():  # the incremental staging tables equal raw's current rows
            held = dict(wh.query(f"SELECT org_code || '|' || _source_key, _record_hash FROM staging.{model}"))
            assert held == dict(wh.query(CURRENT_ROWS.format(table=table))), model
        visit = wh.query_dicts(
            "SELECT dept_code, dept_std_code, dept_std_name, empi_id FROM cdr.cdr__encounter "
            "WHERE org_code = ? AND local_encounter_id = ?", [RMYY, visit_id]
        )  # fmt: skip
        stale = sum(
            wh.scalar(f"SELECT count(*) FROM cdr.{model} WHERE empi_id = ?", [merged_from])
            for model in ("cdr__encounter", "cdr__patient", "cdr__lab_report")
        )
    assert f"{RMYY}|SF_FYMX:{fee_id}" in before["cdr__fee"] and f"{RMYY}|SF_FYMX:{fee_id}" not in after["cdr__fee"]
    assert visit[0]["dept_code"] == "0102" and visit[0]["dept_std_name"] == "外科"
    assert stale == 0


def _norm(value: Any) -> Any:
    if isinstance(value, float | Decimal):
        return round(float(value), 6)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every model (tables and views) of the dbt schemas, sorted."""
    with Warehouse(url) as wh:
        names = wh.query(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN (?, ?, ?, ?)",
            list(DBT_SCHEMAS),
        )
        return {f"{schema}.{name}": _rows(wh, f"{schema}.{name}") for schema, name in names}


def _rows(wh: Warehouse, relation: str) -> list[tuple[Any, ...]]:
    return sorted((tuple(_norm(v) for v in row) for row in wh.query(f"SELECT * FROM {relation}")), key=repr)


def test_incremental_next_day_equals_full_refresh(built: Built) -> None:
    """A next day (new visits, stays and results, discharges of open stays, cancellations) and an MPI merge, run
    incrementally, give exactly the rows a `--full-refresh` run gives on the same data; the models' tests pass."""
    cfg = built.config
    stages.synth_next_day(cfg)
    with sqlite3.connect(cfg.data_dir / "sources" / RMYY / "his.sqlite") as con:  # a stay moved to another month
        con.execute("UPDATE ZY_BAXX SET RYSJ = '2026-01-15 09:00:00', GXSJ = '2026-12-02 08:00:00' "
                    "WHERE ZYH = (SELECT min(ZYH) FROM ZY_BAXX WHERE ZFBZ = '0')")  # fmt: skip
    with Warehouse(built.url) as wh:
        before = {t: wh.count(f"raw.{t}") for t in ("his_encounter", "his_fee", "lis_result")}
    stages.ingest(cfg)
    with Warehouse(built.url) as wh:
        assert all(wh.count(f"raw.{t}") > n for t, n in before.items())  # the next day landed
        merged_from, merged_into = wh.query(
            "SELECT min(empi_id), max(empi_id) FROM mpi.xref WHERE org_code = ? AND source_system = 'LIS'", [RMYY]
        )[0]
        wh.execute("UPDATE mpi.xref SET empi_id = ? WHERE empi_id = ?", [merged_into, merged_from])
    run_dbt(["run"], built.url, target_path=built.target)
    run_dbt(["test", "--exclude", "tag:seed_data"], built.url, target_path=built.target)
    incremental = _snapshot(built.url)
    run_dbt(["run", "--full-refresh"], built.url, target_path=built.target)
    full = _snapshot(built.url)
    assert set(incremental) == set(full)
    assert incremental["marts.marts__hospital_efficiency"] and incremental["cdr.cdr__procedure"]
    for name, rows in full.items():
        assert incremental[name] == rows, name


def test_docs_generate(built: Built) -> None:
    out = run_dbt(["docs", "generate"], built.url, target_path=built.target)
    assert "Catalog written" in out
    assert (built.target / "catalog.json").is_file() and (built.target / "manifest.json").is_file()
