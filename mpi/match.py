"""Matching: exact valid 身份证号 + agreement, then Fellegi–Sunter scoring of blocked pairs, then clustering.

The blocking rules, comparison levels, m/u probabilities and thresholds come from `mpi/data/settings.yaml`
(Splink-shaped). Scoring runs as SQL on an embedded DuckDB engine over the normalized identity frame, so the
result is the same whichever warehouse (DuckDB or PostgreSQL) holds the index.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import polars as pl
import yaml

SETTINGS_FILE = Path(__file__).with_name("data") / "settings.yaml"
EXACT_WEIGHT = 99.0


@cache
def _load(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text(encoding="utf-8"))


def load_settings(path: Path | None = None) -> dict[str, Any]:
    """The matching settings: `path`, else $HUTONG_MPI_SETTINGS (e.g. written by `hutong mpi train`), else shipped."""
    return _load(str(path or os.environ.get("HUTONG_MPI_SETTINGS") or SETTINGS_FILE))


def prior_weight(settings: dict[str, Any]) -> float:
    lam = float(settings["probability_two_random_records_match"])
    return math.log2(lam / (1 - lam))


def weight_sql(settings: dict[str, Any]) -> str:
    """The Fellegi–Sunter match weight of a pair `l`, `r` as one SQL expression."""
    terms = [f"{prior_weight(settings):.6f}"]
    for comp in settings["comparisons"]:
        whens = []
        for level in comp["comparison_levels"]:
            bf = 0.0 if level.get("is_null_level") else math.log2(level["m_probability"] / level["u_probability"])
            if level["sql_condition"].strip().upper() == "ELSE":
                whens.append(f"ELSE {bf:.6f}")
            else:
                whens.append(f"WHEN {level['sql_condition']} THEN {bf:.6f}")
        if not whens[-1].startswith("ELSE"):
            whens.append("ELSE 0")
        terms.append("(CASE " + " ".join(whens) + " END)")
    return "CAST(" + " + ".join(terms) + " AS DOUBLE)"


def _engine() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"threads": 2, "memory_limit": "800MB", "preserve_insertion_order": False})
    return con


PAIR_COLUMNS = ("rid", "org_code", "local_id", "name", "name_key", "surname", "sex_code", "dob", "dob_swapped",
                "id_no", "id_valid", "id17", "phone", "township_code", "address_detail", "is_new")  # fmt: skip


def _frame(identities: pl.DataFrame) -> pl.DataFrame:
    dob = pl.coalesce("birth_date", "id_birth_date")
    swapped = pl.when(dob.dt.day() <= 12).then(pl.date(dob.dt.year(), dob.dt.day(), dob.dt.month())).otherwise(None)
    df = identities.with_columns(dob.alias("dob"))
    if "is_new" not in df.columns:
        df = df.with_columns(pl.lit(True).alias("is_new"))
    return df.with_columns(swapped.alias("dob_swapped")).select(PAIR_COLUMNS)


def score_pairs(identities: pl.DataFrame, settings: dict[str, Any] | None = None) -> pl.DataFrame:
    """Scored candidate pairs (rid_l < rid_r, at least one side new): rid_l, rid_r, weight, method.

    `identities` needs an integer `rid` and the normalized columns; `is_new` (default all True) limits pairs to
    those touching new or changed identities (incremental matching against the existing index).
    """
    settings = settings or load_settings()
    review = float(settings["thresholds"]["review_weight"])
    con = _engine()
    try:
        con.register("ident", _frame(identities).to_arrow())
        blocks = " UNION ".join(
            f"SELECT l.rid AS rid_l, r.rid AS rid_r FROM ident l JOIN ident r ON {rule} "
            f"AND l.rid < r.rid AND (l.is_new OR r.is_new)"
            for rule in settings["blocking_rules_to_generate_predictions"]
        )
        sql = f"""
            WITH pairs AS ({blocks})
            SELECT rid_l, rid_r,
                   CASE WHEN {settings["exact_id"]["condition"]} THEN {EXACT_WEIGHT} ELSE {weight_sql(settings)} END
                       AS weight,
                   CASE WHEN {settings["exact_id"]["condition"]} THEN 'exact_id' ELSE 'probabilistic' END AS method
            FROM pairs p JOIN ident l ON l.rid = p.rid_l JOIN ident r ON r.rid = p.rid_r
        """
        scored = con.sql(f"SELECT * FROM ({sql}) s WHERE weight >= {review} ORDER BY weight DESC, rid_l, rid_r")
        return pl.from_arrow(scored.to_arrow_table())  # type: ignore[return-value]
    finally:
        con.close()


@dataclass
class Clustering:
    """Union-find result: component root per rid, the accepted link per rid, the pairs left for review."""

    root: np.ndarray
    link_method: dict[int, tuple[str, float]] = field(default_factory=dict)
    review: list[tuple[int, int, float]] = field(default_factory=list)


def cluster(
    n: int,
    pairs: pl.DataFrame,
    valid_ids: dict[int, str],
    groups: list[list[int]],
    settings: dict[str, Any] | None = None,
) -> Clustering:
    """Greedy clustering of auto-link pairs, strongest first.

    `valid_ids`: rid → valid 身份证号 (at least those of the rids in `pairs` and `groups`).
    `groups`: rids already sharing an EMPI id (pre-joined; two existing EMPIs are never joined automatically —
    that becomes a review pair). A union that would put two different valid 身份证号 in one person is refused.
    """
    settings = settings or load_settings()
    auto = float(settings["thresholds"]["auto_link_weight"])
    parent = list(range(n))
    ids: dict[int, set[str]] = {i: {v} for i, v in valid_ids.items() if v}
    existing: dict[int, bool] = {}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        parent[b] = a
        if b in ids:
            ids.setdefault(a, set()).update(ids.pop(b))
        existing[a] = existing.get(a, False) or existing.pop(b, False)

    for group in groups:
        head = find(group[0])
        existing[head] = True
        for other in group[1:]:
            rb = find(other)
            if rb != head:
                union(head, rb)
    result = Clustering(root=np.zeros(0, dtype=np.int64))
    columns = (pairs["rid_l"].to_list(), pairs["rid_r"].to_list(), pairs["weight"].to_list(), pairs["method"].to_list())
    for rid_l, rid_r, weight, method in zip(*columns, strict=True):
        a, b = find(rid_l), find(rid_r)
        if a == b:
            continue
        conflict = bool(ids.get(a) and ids.get(b) and ids[a] != ids[b])
        both_existing = existing.get(a, False) and existing.get(b, False)
        if weight >= auto and not conflict and not both_existing:
            if existing.get(b, False):
                a, b = b, a
            union(a, b)
            for rid in (rid_l, rid_r):
                if rid not in result.link_method:
                    result.link_method[rid] = (method, float(weight))
        elif not conflict or weight < EXACT_WEIGHT:
            result.review.append((rid_l, rid_r, float(weight)))
    result.root = _roots(np.asarray(parent, dtype=np.int64))
    return result


def _roots(parent: np.ndarray) -> np.ndarray:
    """The root of every element of a union-find forest, by vectorized pointer jumping (what `find` follows)."""
    while True:
        jumped = parent[parent]
        if np.array_equal(jumped, parent):
            return parent
        parent = jumped
