"""Golden records: one mpi.person row per EMPI id from its identities, by the survivorship rules (data)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

RULES_FILE = Path(__file__).with_name("data") / "survivorship.yaml"
PERSON_FIELDS = ("name", "sex_code", "birth_date", "id_type", "id_no", "phone", "address")


@cache
def rules() -> dict[str, Any]:
    return yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))


def _surviving(members: pl.DataFrame, column: str, criteria: list[str]) -> pl.DataFrame:
    """empi_id → surviving value of `column`."""
    priority = {s: i for i, s in enumerate(rules()["source_priority"])}
    df = members.filter(pl.col(column).is_not_null()).with_columns(
        pl.len().over("empi_id", column).alias("_freq"),
        pl.col("source_system").replace_strict(priority, default=len(priority), return_dtype=pl.Int32).alias("_prio"),
        pl.col("updated_at").fill_null(datetime(1900, 1, 1)).alias("_upd"),
        pl.col("id_valid").fill_null(False).alias("_valid"),
    )
    keys, desc = [], []
    for c in criteria:
        keys.append({"valid_id": "_valid", "most_frequent": "_freq", "source_priority": "_prio",
                     "most_recent": "_upd"}[c])  # fmt: skip
        desc.append(c != "source_priority")
    keys += [column, "org_code", "source_system", "local_id"]
    desc += [False, False, False, False]
    return df.sort(keys, descending=desc).group_by("empi_id", maintain_order=True).first().select("empi_id", column)


def golden_records(members: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Person rows for the EMPI ids in `members` (identity columns + empi_id), all active."""
    out = members.select("empi_id").unique().sort("empi_id")
    for column, criteria in rules()["fields"].items():
        out = out.join(_surviving(members, column, list(criteria)), on="empi_id", how="left")
    return out.with_columns(
        pl.lit("active").alias("status"),
        pl.lit(None, pl.String).alias("retired_into"),
        pl.lit(now).alias("created_at"),
        pl.lit(now).alias("updated_at"),
    ).select("empi_id", "status", "retired_into", *PERSON_FIELDS, "created_at", "updated_at")
