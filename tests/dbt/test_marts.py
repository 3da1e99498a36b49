"""Indicator marts on a synthetic county with a whole year of data (tiny_year: a hospital of each HIS vendor and a
township centre with public health), built once per warehouse: DuckDB and PostgreSQL agree row for row, and a
sample of indicators recomputed in Python from the source systems and ground truth matches the marts."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hutong import stages
from hutong.config import PlatformConfig
from hutong.dbt_runner import run_dbt
from tests.conftest import PG_ADMIN, write_config
from tests.dbt.marts_truth import hospital_year, public_health_year
from tests.dbt.truth_xref import fill_xref_from_truth
from warehouse import Warehouse

pytestmark = pytest.mark.xdist_group("marts_year")

SHORTS = ("RMYY", "FYBJY", "QLWSY")  # vendor_a hospital, vendor_b hospital, township centre with public health
MARTS = ("marts__hospital_efficiency", "marts__workload", "marts__patient_burden", "marts__fee_structure",
         "marts__top_diseases", "marts__public_health_coverage", "marts__indicator_value")  # fmt: skip
YEAR = 2026
# the marts, the health record and everything upstream; tests only where every parent is built
SELECT = ["build", "--select", "+marts", "+health_record", "--indirect-selection", "cautious"]


class County:
    """The generated sources (once) and a built warehouse per kind (on first use)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for sub in ("sources", "duckdb", "postgres"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        self.sources = write_config(root / "sources", f"duckdb:///{root / 'unused.duckdb'}", shorts=SHORTS,
                                    synthetic_size="tiny_year")  # fmt: skip
        stages.synth(self.sources, "tiny_year", 7)
        self.urls: dict[str, str] = {}

    def config_for(self, url: str, kind: str) -> PlatformConfig:
        config = write_config(self.root / kind, url, shorts=SHORTS, synthetic_size="tiny_year")
        target = config.data_dir
        if not target.exists():  # the same generated sources, without generating again
            shutil.copytree(self.sources.data_dir, target)
        return config

    def url(self, kind: str) -> str:
        if kind not in self.urls:
            if kind == "duckdb":
                url = f"duckdb:///{self.root / 'duckdb' / 'warehouse.duckdb'}"
            else:
                name = f"hutong_marts_{uuid.uuid4().hex[:10]}"
                with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                    admin.execute(f'CREATE DATABASE "{name}"')
                url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
            self.urls[kind] = url
            config = self.config_for(url, kind)
            stages.ingest(config)
            stages.reference_tables(config)
            with Warehouse(url) as wh:
                fill_xref_from_truth(wh, config.data_dir / "truth")
            run_dbt(SELECT, url, target_path=self.root / kind / "dbt_target")
        return self.urls[kind]


@pytest.fixture(scope="module")
def county(tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    built = County(tmp_path_factory.mktemp("marts_year"))
    yield built
    if "postgres" in built.urls:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{built.urls["postgres"].rsplit("/", 1)[1]}" WITH (FORCE)')


def _norm(value: Any) -> Any:
    if isinstance(value, float | Decimal):
        return round(float(value), 3)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    with Warehouse(url) as wh:
        return sorted((tuple(_norm(v) for v in row) for row in wh.query(f"SELECT * FROM {table}")), key=repr)


@pytest.mark.postgres
def test_marts_are_the_same_on_duckdb_and_postgres(county: County) -> None:
    duck, pg = county.url("duckdb"), county.url("postgres")
    for table in [f"marts.{m}" for m in MARTS] + ["health_record.hr__person"]:
        left, right = _rows(duck, table), _rows(pg, table)
        assert left, f"{table} is empty"
        assert left == right, f"{table} differs between DuckDB and PostgreSQL"


def _indicators(url: str, period: str, ids: set[str]) -> dict[tuple[str, str], float | None]:
    with Warehouse(url) as wh:
        rows = wh.query(
            "SELECT indicator_id, org_code, value FROM marts.marts__indicator_value "
            "WHERE period_type = 'year' AND period = ? AND level = 'institution'",
            [period],
        )
    return {(i, o): (None if v is None else float(v)) for i, o, v in rows if i in ids}


def _assert_close(
    marts: dict[tuple[str, str], float | None], expected: dict[str, dict[str, float | None]], minimum: int
) -> None:
    checked = 0
    for org, values in expected.items():
        for indicator, want in values.items():
            got = marts[(indicator, org)]
            if want is None:
                assert got is None, (indicator, org, got)
            else:
                assert got is not None and abs(got - want) <= 1e-3 * max(1.0, abs(want)), (indicator, org, got, want)
                checked += 1
    assert checked >= minimum  # indicators with a value, compared


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_hospital_indicators_match_the_his_databases(county: County, kind: str) -> None:
    expected = hospital_year(county.sources, YEAR)
    assert any(v["wl_discharges"] for v in expected.values())  # the sample has inpatients to measure
    ids = {i for values in expected.values() for i in values}
    _assert_close(_indicators(county.url(kind), str(YEAR), ids), expected, 10)


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_public_health_indicators_match_the_exports_and_truth(county: County, kind: str) -> None:
    expected = public_health_year(county.sources, YEAR)
    org = county.sources.institution("QLWSY").org_code
    assert expected[org]["ph_htn_standard_rate"]  # some patients were followed up four times in the year
    ids = {i for values in expected.values() for i in values}
    _assert_close(_indicators(county.url(kind), str(YEAR), ids), expected, 6)


def test_indicator_catalogue_covers_every_indicator_value(county: County) -> None:
    with Warehouse(county.url("duckdb")) as wh:
        catalogue = {r[0] for r in wh.query("SELECT indicator_id FROM marts.indicator")}
        used = {r[0] for r in wh.query("SELECT DISTINCT indicator_id FROM marts.marts__indicator_value")}
        top = wh.query(
            "SELECT count(*), max(disease_rank) FROM marts.marts__top_diseases WHERE period_type = 'year' "
            "GROUP BY org_code, period"
        )
    assert used == catalogue
    # type and county rows sum the institutions' numerators and denominators, then take the ratio
    with Warehouse(county.url("duckdb")) as wh:
        rows = wh.query_dicts("SELECT * FROM marts.marts__indicator_value WHERE period_type = 'year'")
    institutions = [r for r in rows if r["level"] == "institution"]
    for row in (r for r in rows if r["level"] != "institution"):
        members = [r for r in institutions if (r["indicator_id"], r["period"]) == (row["indicator_id"], row["period"])
                   and (row["level"] == "county" or r["org_type"] == row["org_type"])]  # fmt: skip
        assert members and float(row["numerator"]) == pytest.approx(sum(float(m["numerator"]) for m in members))
    county_visits = [r for r in rows if r["level"] == "county" and r["indicator_id"] == "wl_visits"]
    assert county_visits and all(float(r["value"]) == float(r["numerator"]) > 0 for r in county_visits)
    assert all(n <= 10 and rank == n for n, rank in top)


def _snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with Warehouse(url) as wh:
        names = wh.query(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN (?, ?, ?, ?)",
            ["staging", "cdr", "health_record", "marts"],
        )
    return {f"{s}.{n}": _rows(url, f"{s}.{n}") for s, n in names}


def _land(wh: Warehouse, table: str, rows: list[dict[str, Any]]) -> None:
    names = wh.columns(table)
    wh.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                   [[r[n] for n in names] for r in rows])  # fmt: skip


def _land_public_health_changes(wh: Warehouse) -> None:
    """Raw versions as the public-health connector lands them: a follow-up entered again under a lower id (it wins
    the service, the held one must go), one moved to another day, one deleted, and a health record whose corrected
    birth date changes the age (and blood-pressure target) of its follow-ups."""
    table = "raw.ph_hypertension_followup"
    at = wh.scalar(f"SELECT max(_ingested_at) FROM {table}") + timedelta(hours=1)
    first, moved, deleted = wh.query_dicts(f"SELECT * FROM {table} ORDER BY _source_key LIMIT 3")
    again = {**first, "followup_no": "0" + first["followup_no"], "_source_key": "hypertension_followup:0"
             + first["followup_no"], "_record_hash": "again"}  # fmt: skip
    rows = [again, {**moved, "visit_date": f"{YEAR}-03-03", "_record_hash": "moved"}, {**deleted, "_op": "D"}]
    _land(wh, table, [{**r, "_ingested_at": at} for r in rows])
    record = wh.query_dicts("SELECT * FROM raw.ph_health_record WHERE record_no = ? LIMIT 1", [moved["record_no"]])
    _land(wh, "raw.ph_health_record", [{**record[0], "birth_date": "1950-01-01", "_record_hash": "born",
                                        "_ingested_at": at}])  # fmt: skip


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_incremental_next_day_equals_full_refresh(county: County, kind: str) -> None:
    """Last in the module (it adds a day): the next day of the sources and changed public-health rows, run
    incrementally, give the rows a `--full-refresh` run gives on the same data in every staging, CDR,
    health-record and mart model; the models' tests (of their last load) pass."""
    url = county.url(kind)
    config = county.config_for(url, kind)
    stages.synth_next_day(config)
    with Warehouse(url) as wh:
        before = wh.count("raw.his_encounter")
    stages.ingest(config)
    with Warehouse(url) as wh:
        assert wh.count("raw.his_encounter") > before  # the next day landed
        _land_public_health_changes(wh)
    target = county.root / kind / "dbt_target"
    run_dbt(["run", *SELECT[1:4]], url, target_path=target)
    run_dbt(["test", *SELECT[1:], "--exclude", "tag:seed_data"], url, target_path=target)
    incremental = _snapshot(url)
    run_dbt(["run", *SELECT[1:4], "--full-refresh"], url, target_path=target)
    full = _snapshot(url)
    assert set(incremental) == set(full) and incremental["marts.marts__public_health_coverage"]
    for name, rows in full.items():
        assert incremental[name] == rows, name
