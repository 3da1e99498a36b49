"""Re-estimate the m/u probabilities of `mpi/data/settings.yaml` with Splink (DuckDB backend).

u by random sampling, m by expectation maximisation on two blocking rules; the shipped comparison levels, blocking
rules and thresholds are kept. The trained file is used when `HUTONG_MPI_SETTINGS` points at it.
"""

from __future__ import annotations

import copy
import re
from typing import Any

import polars as pl

from mpi.match import _frame

_LEFT = re.compile(r"\bl\.(\w+)")
_RIGHT = re.compile(r"\br\.(\w+)")


def to_splink_sql(condition: str) -> str:
    """`l.name = r.name` → `name_l = name_r` (Splink's column suffixes)."""
    return _RIGHT.sub(r"\1_r", _LEFT.sub(r"\1_l", condition))


def splink_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """The Hutong settings as a Splink settings dictionary."""
    comparisons = []
    for comp in settings["comparisons"]:
        levels = []
        for level in comp["comparison_levels"]:
            out = {"sql_condition": to_splink_sql(level["sql_condition"]), "label_for_charts": level["label"]}
            if level.get("is_null_level"):
                out["is_null_level"] = True
            else:
                out |= {"m_probability": level["m_probability"], "u_probability": level["u_probability"]}
            levels.append(out)
        comparisons.append({"output_column_name": comp["output_column_name"], "comparison_levels": levels})
    return {
        "link_type": "dedupe_only",
        "unique_id_column_name": "rid",
        "probability_two_random_records_match": settings["probability_two_random_records_match"],
        "blocking_rules_to_generate_predictions": list(settings["blocking_rules_to_generate_predictions"]),
        "comparisons": comparisons,
        "retain_intermediate_calculation_columns": False,
        "retain_matching_columns": False,
    }


EM_BLOCKS = ("l.name_key = r.name_key AND l.dob = r.dob", "l.id17 = r.id17")


def train(identities: pl.DataFrame, settings: dict[str, Any], max_pairs: float = 1e6) -> dict[str, Any]:
    """A copy of `settings` with m/u estimated on `identities` (normalized, with an integer `rid`)."""
    from splink import DuckDBAPI, Linker

    db_api = DuckDBAPI()
    table = db_api.register(_frame(identities).drop("is_new").to_arrow())
    linker = Linker(table, splink_settings(settings), log_level="WARNING")
    linker.training.estimate_u_using_random_sampling(max_pairs=max_pairs, seed=1)
    for rule in EM_BLOCKS:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    trained = linker.misc.save_model_to_json()
    out = copy.deepcopy(settings)
    for comp, learned in zip(out["comparisons"], trained["comparisons"], strict=True):
        for level, fitted in zip(comp["comparison_levels"], learned["comparison_levels"], strict=True):
            if level.get("is_null_level"):
                continue
            for key in ("m_probability", "u_probability"):
                if fitted.get(key) is not None:
                    level[key] = float(f"{fitted[key]:.6g}") or level[key]
    return out
