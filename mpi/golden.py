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


# each criterion as an ascending sort key (best first), compared in order inside one struct
_ORDER = {"valid_id": "NOT _valid", "most_frequent": "-_freq", "source_priority": "_prio",
          "most_recent": "-epoch_us(_upd)"}  # fmt: skip


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _surviving_sql(column: str, criteria: list[str]) -> str:
    """SQL: empi_id → surviving value of `column` (ties broken by the value, then the identity key)."""
    priority = rules()["source_priority"]
    prio = " ".join(f"WHEN {_quote(s)} THEN {i}" for i, s in enumerate(priority))
    keys = [*(_ORDER[c] for c in criteria), "v", "org_code", "source_system", "local_id"]
    order = ", ".join(f"k{i} := {k}" for i, k in enumerate(keys))
    return f"""
        SELECT empi_id, arg_min(v, struct_pack({order})) AS {column}
        FROM (
            SELECT empi_id, {column} AS v, org_code, source_system, local_id,
                   count(*) OVER (PARTITION BY empi_id, {column}) AS _freq,
                   CASE source_system {prio} ELSE {len(priority)} END AS _prio,
                   coalesce(updated_at, TIMESTAMP '1900-01-01') AS _upd,
                   coalesce(id_valid, false) AS _valid
            FROM multi WHERE {column} IS NOT NULL
        ) AS ranked
        GROUP BY empi_id"""


def golden_records(members: pl.DataFrame, now: datetime) -> pl.DataFrame:
    """Person rows for the EMPI ids in `members` (identity columns + empi_id), all active.

    Set-based in an embedded DuckDB engine: a person of one identity takes its values; the others rank theirs
    with one windowed, ordered aggregate per field."""
    from mpi.match import _engine

    fields = rules()["fields"]
    ctes = ",\n".join(f"f_{i} AS ({_surviving_sql(c, list(crit))})" for i, (c, crit) in enumerate(fields.items()))
    joins = " ".join(f"LEFT JOIN f_{i} USING (empi_id)" for i in range(len(fields)))
    cols = ["empi_id", "org_code", "source_system", "local_id", "updated_at", "id_valid", *fields]
    con = _engine()
    try:
        con.register("members", members.select(cols).to_arrow())
        out = pl.from_arrow(
            con.sql(
                f"WITH sizes AS MATERIALIZED (SELECT empi_id, count(*) AS n FROM members GROUP BY empi_id), "
                "multi AS MATERIALIZED (SELECT m.* FROM members AS m JOIN sizes USING (empi_id) WHERE sizes.n > 1), "
                f"{ctes}, e AS (SELECT DISTINCT empi_id FROM multi) "
                f"SELECT e.empi_id, {', '.join(fields)} FROM e {joins} UNION ALL "
                f"SELECT m.empi_id, {', '.join(f'm.{c}' for c in fields)} FROM members AS m JOIN sizes USING (empi_id) "
                "WHERE sizes.n = 1"
            ).to_arrow_table()
        )
    finally:
        con.close()
    assert isinstance(out, pl.DataFrame)
    return (
        out.sort("empi_id")
        .with_columns(
            [pl.col(c).cast(members.schema[c]) for c in fields]
            + [
                pl.lit("active").alias("status"),
                pl.lit(None, pl.String).alias("retired_into"),
                pl.lit(now).alias("created_at"),
                pl.lit(now).alias("updated_at"),
            ]
        )
        .select("empi_id", "status", "retired_into", *PERSON_FIELDS, "created_at", "updated_at")
    )
