"""Shared fixtures: a fresh warehouse per test on DuckDB and on the real PostgreSQL server, test configs."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from hutong.config import DEFAULT_CONFIG, PlatformConfig, load_config

PG_ADMIN = os.environ.get("HUTONG_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
MARIADB = os.environ.get("HUTONG_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")


def _pg_admin() -> psycopg.Connection:
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:  # fail loudly: PostgreSQL tests must run, never skip
        raise RuntimeError(f"PostgreSQL test server {PG_ADMIN} is not reachable: {exc}") from exc


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A new PostgreSQL database for one test, dropped afterwards."""
    name = f"hutong_test_{uuid.uuid4().hex[:12]}"
    with _pg_admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    admin_url = PG_ADMIN.rsplit("/", 1)[0]
    try:
        yield f"{admin_url}/{name}"
    finally:
        with _pg_admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on the embedded DuckDB warehouse and on a fresh PostgreSQL database."""
    if request.param == "duckdb":
        return f"duckdb:///{tmp_path / 'warehouse' / 'hutong.duckdb'}"
    return request.getfixturevalue("pg_url")


def write_config(
    tmp_path: Path,
    warehouse_url: str,
    shorts: tuple[str, ...] = ("RMYY", "FYBJY", "QLWSY"),
    overrides: dict[str, Any] | None = None,
    synthetic_size: str | None = "tiny",
    kinds: tuple[str, ...] | None = None,
) -> PlatformConfig:
    """A platform file in tmp_path: a few institutions of the shipped county, a private data dir and warehouse.

    `kinds` keeps only those source kinds on every institution (e.g. ("his",) for hand-made HIS tables).
    """
    raw = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(tmp_path / "data")
    raw["warehouse"]["url"] = warehouse_url
    raw["institutions"] = [i for i in raw["institutions"] if i["short"] in shorts]
    if kinds is not None:
        for inst in raw["institutions"]:
            inst["sources"] = {k: v for k, v in inst["sources"].items() if k in kinds}
    if synthetic_size:
        raw["synthetic"] = {"size": synthetic_size, "seed": 7}
    else:
        raw.pop("synthetic", None)
    for key, value in (overrides or {}).items():
        raw[key] = value
    path = tmp_path / "county.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(path)
