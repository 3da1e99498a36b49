"""A small synthetic county (tiny size, three institutions) ingested, built by dbt and quality-checked once per
session and warehouse; every test gets its own copy (DuckDB file copy, PostgreSQL database from a template)."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest

from hutong import stages
from hutong.config import PlatformConfig
from hutong.dbt_runner import run_dbt
from tests.conftest import PG_ADMIN, write_config
from warehouse import Warehouse

SHORTS = ("RMYY", "RXYY", "QLWSY")  # a CDA hospital, the FHIR hospital, a township centre with public health
QUALITY_DAY = date(2026, 11, 1)


@dataclass
class County:
    url: str
    config: PlatformConfig  # sources and truth of the generated county (shared, read-only)
    data_dir: Path  # this test's own folder for spools and outboxes

    @property
    def orgs(self) -> list[str]:
        return [i.org_code for i in self.config.institutions]


def build_county(tmp: Path, url: str) -> PlatformConfig:
    """Generate, ingest, reference tables, dbt build (private target path), quality rules and scores."""
    config = write_config(tmp, url, shorts=SHORTS, synthetic_size="tiny")
    stages.synth(config, "tiny", 7)
    stages.ingest(config)
    stages.init(config)
    stages.reference_tables(config)  # ops.institution / ops.population: facility feed, marts, notebooks
    run_dbt(["build"], url, target_path=tmp / "dbt_target")
    with Warehouse(url) as wh:
        from quality.runner import run_rules
        from quality.scoring import score_day

        run_rules(wh, [i.org_code for i in config.institutions], QUALITY_DAY)
        score_day(wh, QUALITY_DAY, {i.org_code: i.type for i in config.institutions})  # notebooks read scores
    return config


@pytest.fixture(scope="session")
def _templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[str, PlatformConfig]]]:
    built: dict[str, tuple[str, PlatformConfig]] = {}
    yield built
    for url, _ in built.values():
        if url.startswith("postgresql"):
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def _template(kind: str, built: dict[str, tuple[str, PlatformConfig]], factory: pytest.TempPathFactory) -> tuple:
    if kind not in built:
        tmp = factory.mktemp(f"county_{kind}")
        if kind == "duckdb":
            url = f"duckdb:///{tmp / 'template.duckdb'}"
        else:
            name = f"hutong_tpl_{uuid.uuid4().hex[:10]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
        built[kind] = (url, build_county(tmp, url))
    return built[kind]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def county(request: pytest.FixtureRequest, tmp_path: Path, _templates, tmp_path_factory) -> Iterator[County]:
    """A private copy of the small county's warehouse, on DuckDB and on PostgreSQL."""
    template_url, config = _template(request.param, _templates, tmp_path_factory)
    if request.param == "duckdb":
        path = tmp_path / "warehouse.duckdb"
        shutil.copyfile(template_url.removeprefix("duckdb:///"), path)
        yield County(f"duckdb:///{path}", config, tmp_path / "data")
        return
    name = f"hutong_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_url.rsplit("/", 1)[1]}"')
    try:
        yield County(f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}", config, tmp_path / "data")
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
