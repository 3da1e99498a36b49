"""A tiny synthetic county (six institutions of three types and every source kind) ingested into raw once per
session and warehouse, with one quality run and its scores."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import psycopg
import pytest

import synthetic
from hutong import stages
from hutong.config import PlatformConfig
from quality.runner import run_rules
from quality.scoring import score_day
from tests.conftest import PG_ADMIN, write_config
from warehouse import Warehouse

ORIGINAL = synthetic.load_profiles

SHORTS = ("RMYY", "RXYY", "HZYY", "QLWSY", "CMWSY", "SHSQ")
DAY = date(2026, 11, 1)
AMPLIFY = 4.0  # defect rates × 4, so the tiny county carries enough labelled defects per institution to rank


def amplified_profiles() -> dict:
    """synthetic/profiles.yaml with every defect rate × AMPLIFY (type and institution multipliers unchanged)."""
    profiles = ORIGINAL()
    defects = profiles["defects"]
    defects["defaults"] = {k: v * AMPLIFY for k, v in defects["defaults"].items()}
    defects["by_kind"] = {kind: {k: v * AMPLIFY for k, v in r.items()} for kind, r in defects["by_kind"].items()}
    return profiles


def injected_multiplier(short: str, org_type: str) -> float:
    """The institution's injected defect-rate multiplier (type × own), from the profiles."""
    defects = ORIGINAL()["defects"]
    return defects["type_multiplier"].get(org_type, 1.0) * defects["institution_multiplier"].get(short, 1.0)


@dataclass
class County:
    url: str
    config: PlatformConfig

    @property
    def orgs(self) -> list[str]:
        return [i.org_code for i in self.config.institutions]

    @property
    def org_types(self) -> dict[str, str]:
        return {i.org_code: i.type for i in self.config.institutions}

    @property
    def shorts(self) -> dict[str, str]:
        return {i.org_code: i.short for i in self.config.institutions}

    @property
    def truth(self) -> Path:
        return self.config.data_dir / "truth"


@pytest.fixture(scope="session", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def qcounty(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[County]:
    tmp = tmp_path_factory.mktemp(f"qcounty_{request.param}")
    name = None
    if request.param == "duckdb":
        url = f"duckdb:///{tmp / 'wh.duckdb'}"
    else:
        name = f"hutong_q_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    try:
        config = write_config(tmp, url, shorts=SHORTS, synthetic_size="tiny")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(synthetic, "load_profiles", amplified_profiles)
            stages.synth(config, "tiny", 7)
        stages.ingest(config)
        county = County(url, config)
        with Warehouse(url) as wh:
            run_rules(wh, county.orgs, DAY)
            score_day(wh, DAY, county.org_types)
        yield county
    finally:
        if name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
