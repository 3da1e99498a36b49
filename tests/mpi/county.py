"""A generated tiny county (several institutions, every source kind) and its ground truth, for MPI tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from hutong import stages
from hutong.config import PlatformConfig
from tests.conftest import write_config
from warehouse import Warehouse, ensure_raw_table

SHORTS = ("RMYY", "ZYY", "FYBJY", "QLWSY", "GWWSY", "JCLSQ")
IDENTITY_TABLES = ("his_patient", "lis_message", "pacs_study", "pacs_report", "emr_document", "ph_health_record",
                   "ph_hypertension_followup", "ph_diabetes_followup")  # fmt: skip
KEY = ["org_code", "source_system", "local_id"]


@dataclass(frozen=True)
class County:
    config: PlatformConfig
    truth_dir: Path

    @property
    def townships(self) -> list[dict[str, str]]:
        return list(self.config.county["townships"])


def make_county(tmp: Path, seed: int = 7) -> County:
    """Generate and ingest a tiny county into its own DuckDB warehouse."""
    config = write_config(tmp, f"duckdb:///{tmp / 'source.duckdb'}", shorts=SHORTS)
    stages.synth(config, "tiny", seed)
    stages.ingest(config)
    return County(config, config.data_dir / "truth")


def copy_raw(source_url: str, target: Warehouse, orgs: set[str] | None = None) -> None:
    """Copy the raw identity tables (optionally only some institutions' rows) into another warehouse."""
    with Warehouse(source_url, read_only=True) as src:
        for table in IDENTITY_TABLES:
            if not src.table_exists(f"raw.{table}"):
                continue
            frame = src.query_df(f"SELECT * FROM raw.{table}")
            if orgs is not None:
                frame = frame.filter(pl.col("_org_code").is_in(sorted(orgs)))
            payload = [c for c in frame.columns if not c.startswith("_")]
            ensure_raw_table(target, table, payload)
            target.load(f"raw.{table}", frame)


def truth(county: County, source_url: str) -> pl.DataFrame:
    """(org_code, source_system, local_id) → true person_id for every identity the MPI sees."""
    records = pl.read_csv(county.truth_dir / "source_records.csv", infer_schema=False)
    with Warehouse(source_url, read_only=True) as wh:
        lis = wh.query_df("SELECT DISTINCT _org_code AS org_code, _source_key AS k, patient_id FROM raw.lis_message")
        pacs = wh.query_df(
            "SELECT DISTINCT _org_code AS org_code, accession_number AS k, patient_id FROM raw.pacs_study UNION "
            "SELECT DISTINCT _org_code, accession_number, patient_id FROM raw.pacs_report"
        )
        emr = wh.query_df("SELECT DISTINCT _org_code AS org_code, document_id AS k, patient_id FROM raw.emr_document")

    def direct(entity: str) -> pl.DataFrame:
        return records.filter(pl.col("entity") == entity).select(
            "org_code", "source_system", pl.col("local_key").alias("local_id"), "person_id"
        )

    def via(frame: pl.DataFrame, system: str, entity: str) -> pl.DataFrame:
        keyed = records.filter(pl.col("entity") == entity).select("org_code", pl.col("local_key").alias("k"),
                                                                  "person_id")  # fmt: skip
        return frame.join(keyed, on=["org_code", "k"]).select(
            "org_code", pl.lit(system).alias("source_system"), pl.col("patient_id").alias("local_id"), "person_id"
        )

    parts = [direct("patient"), direct("health_record"), via(lis, "LIS", "lab_result"),
             via(pacs, "PACS", "imaging_study"), via(emr, "EMR", "clinical_document")]  # fmt: skip
    return pl.concat(parts).unique(KEY)


def pair_counts(frame: pl.DataFrame, predicted: str, actual: str) -> tuple[int, int, int]:
    """(true-positive, predicted, actual) pairwise counts of a clustering against the truth."""

    def pairs(keys: list[str]) -> int:
        n = frame.group_by(keys).len()["len"]
        return int((n * (n - 1) // 2).sum())

    return pairs([predicted, actual]), pairs([predicted]), pairs([actual])
