"""A tiny synthetic county (a vendor_a hospital with LIS/PACS/EMR and a vendor_b hospital) for the dbt tests:
sources generated once per session, copied per warehouse so each test module can change them."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import yaml

from hutong import stages
from hutong.config import PlatformConfig, load_config
from tests.conftest import write_config
from warehouse import Warehouse, ensure_core

SHORTS = ("RMYY", "FYBJY")
KINDS = ("his", "lis", "pacs", "emr")
SEED = 11


def generate(factory: pytest.TempPathFactory) -> Path:
    """Generate the sources once; returns the data dir."""
    tmp = factory.mktemp("dbt_county_src")
    config = write_config(tmp, f"duckdb:///{tmp / 'unused.duckdb'}", shorts=SHORTS, kinds=KINDS)
    stages.synth(config, "tiny", SEED)
    return config.data_dir


def county_config(tmp: Path, url: str, sources: Path) -> PlatformConfig:
    """A config on `url` with a private copy of the generated sources."""
    config = write_config(tmp, url, shorts=SHORTS, kinds=KINDS)
    raw = yaml.safe_load(config.path.read_text(encoding="utf-8"))
    data_dir = tmp / "county_data"
    shutil.copytree(sources, data_dir, ignore=shutil.ignore_patterns("warehouse"))
    raw["platform"]["data_dir"] = str(data_dir)
    config.path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(config.path)


def fill_xref(wh: Warehouse, data_dir: Path) -> int:
    """mpi.xref from the synthetic ground truth: every HIS patient → its person id (the EMPI stand-in); the
    LIS, PACS and EMR identities carry the HIS patient id of their institution, so they link to the same person."""
    ensure_core(wh)
    person = {}
    with (data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        for r in csv.DictReader(handle):
            if r["entity"] == "patient":
                person[(r["org_code"], r["source_system"], r["local_key"])] = r["person_id"]
    rows = [(org, system, local, pid) for (org, system, local), pid in person.items()]
    by_org = {(org, local): pid for org, _, local, pid in rows}
    others = (("lis_message", "LIS"), ("pacs_study", "PACS"), ("pacs_report", "PACS"), ("emr_document", "EMR"))
    for table, system in others:
        if not wh.table_exists(f"raw.{table}"):
            continue
        for org, local in wh.query(f"SELECT DISTINCT _org_code, patient_id FROM raw.{table}"):
            if (org, local) in by_org:
                rows.append((org, system, local, by_org[(org, local)]))
    rows = list({(o, s, loc): (o, s, loc, p) for o, s, loc, p in rows}.values())
    wh.execute("DELETE FROM mpi.xref")
    wh.executemany(
        "INSERT INTO mpi.xref (org_code, source_system, local_id, empi_id, link_method) VALUES (?, ?, ?, ?, 'truth')",
        rows,
    )
    return len(rows)
