"""Reference tables the platform writes before dbt: ops.institution (from the platform config) and ops.population
(常住人口 by township × sex × age band, from the statistics bureau's table named by `county.population_file`).

They are the denominators of the indicator marts (beds, physicians, resident population). Both are replaced
whole on every run (small tables), inside one transaction, so a re-run gives the same contents.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from hutong.config import ConfigError, PlatformConfig
from warehouse import Warehouse, ensure_core, ensure_raw_table

POPULATION_COLUMNS = ("year", "township_code", "township_name", "sex_code", "age_low", "age_high", "population")
SEX_CODES = {"0", "1", "2", "9"}  # GB/T 2261.1-2003


@dataclass(frozen=True)
class ReferenceResult:
    institutions: int
    population_rows: int
    population_total: int
    population_file: Path | None
    warning: str = ""  # set when the population file is missing: the population-based indicators stay NULL


def population_path(config: PlatformConfig) -> Path | None:
    """The population table named by `county.population_file` ({data_dir} filled in), or None."""
    value = (config.county or {}).get("population_file")
    if not value:
        return None
    path = Path(str(value).replace("{data_dir}", str(config.data_dir)))
    return path if path.is_absolute() else (config.path.parent / path).resolve()


def read_population(path: Path) -> list[tuple[int, str, str, str, int, int, int]]:
    """Rows of the population CSV, checked: header, integer counts ≥ 0, sex codes of GB/T 2261.1, bands in order."""
    if not path.is_file():
        raise ConfigError(f"county.population_file {path} not found; generate the synthetic county or supply the "
                          "statistics bureau's table (columns " + ", ".join(POPULATION_COLUMNS) + ")")  # fmt: skip
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in POPULATION_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}")
        rows = []
        for line, r in enumerate(reader, start=2):
            try:
                year, low, high, count = int(r["year"]), int(r["age_low"]), int(r["age_high"]), int(r["population"])
            except ValueError as exc:
                message = f"{path} line {line}: year, age_low, age_high and population must be integers"
                raise ConfigError(message) from exc
            if count < 0 or low > high or r["sex_code"] not in SEX_CODES:
                raise ConfigError(f"{path} line {line}: population ≥ 0, age_low ≤ age_high, sex_code GB/T 2261.1")
            rows.append((year, r["township_code"].strip(), r["township_name"].strip(), r["sex_code"], low, high, count))
    return rows


def institution_frame(config: PlatformConfig, now: datetime) -> pl.DataFrame:
    rows = [
        {
            "org_code": i.org_code, "short": i.short, "name": i.name, "type": i.type, "grade": i.grade,
            "township_code": i.township, "beds": i.beds, "physicians": i.physicians,
            "has_public_health": "public_health" in i.sources, "source_kinds": ",".join(sorted(i.sources)),
            "refreshed_at": now,
        }
        for i in config.institutions
    ]  # fmt: skip
    return pl.DataFrame(rows, schema={"org_code": pl.Utf8, "short": pl.Utf8, "name": pl.Utf8, "type": pl.Utf8,
                                      "grade": pl.Utf8, "township_code": pl.Utf8, "beds": pl.Int64,
                                      "physicians": pl.Int64, "has_public_health": pl.Boolean,
                                      "source_kinds": pl.Utf8, "refreshed_at": pl.Datetime("us")})  # fmt: skip


def population_frame(rows: list[tuple], source: str, now: datetime) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema={"year": pl.Int64, "township_code": pl.Utf8, "township_name": pl.Utf8,
                                       "sex_code": pl.Utf8, "age_low": pl.Int64, "age_high": pl.Int64,
                                       "population": pl.Int64}, orient="row")  # fmt: skip
    return frame.with_columns(
        pl.lit(source).alias("source_file"), pl.lit(now).cast(pl.Datetime("us")).alias("refreshed_at")
    )


def ensure_public_health_raw(wh: Warehouse) -> None:
    """The raw ph_* tables the dbt sources read, created empty when no export has landed yet (same columns as
    the connector creates: the contract's standard columns + extra_columns/source_format/source_encoding)."""
    from connectors.public_health import CONTRACT, load_contract

    contract = load_contract(str(CONTRACT))
    for dataset in contract.datasets.values():
        ensure_raw_table(wh, dataset.raw_table, [*dataset.columns, "extra_columns", "source_format",
                                                 "source_encoding"])  # fmt: skip


def write_reference(wh: Warehouse, config: PlatformConfig) -> ReferenceResult:
    """Replace ops.institution and ops.population from the config and the population file (one transaction).
    Without a population file ops.population is left empty and the result carries a warning."""
    ensure_core(wh)
    ensure_public_health_raw(wh)
    now = datetime.now(UTC).replace(tzinfo=None)
    path = population_path(config)
    warning = ""
    if path is None or not path.is_file():  # a missing table must not stop the rest of the platform
        where = path or "county.population_file not set"
        warning = f"no population table ({where}): 建档率 and 老年人健康管理率 stay NULL"
        rows = []
    else:
        rows = read_population(path)  # a malformed table is an error: it would give wrong denominators
    institutions = institution_frame(config, now)
    population = population_frame(rows, str(path or ""), now)
    with wh.transaction():
        wh.execute("DELETE FROM ops.institution")
        wh.load("ops.institution", institutions)
        wh.execute("DELETE FROM ops.population")
        if population.height:
            wh.load("ops.population", population)
    total = int(population["population"].sum() or 0)
    return ReferenceResult(institutions.height, population.height, total, path if rows else None, warning)
