"""Dagster asset `reference_tables`: ops.institution and ops.population, written before dbt builds the marts.

No `from __future__ import annotations` here: Dagster inspects the real annotation types.
"""

from collections.abc import Iterator
from typing import Any

from dagster import AssetExecutionContext, AssetKey, AssetSpec, MaterializeResult, multi_asset

from hutong import stages

REFERENCE_KEYS = [AssetKey(["ops", "institution"]), AssetKey(["ops", "population"])]


def reference_asset() -> Any:
    """The reference tables as one multi-asset (dbt sources ops.institution / ops.population depend on it)."""

    @multi_asset(
        specs=[AssetSpec(key, group_name="reference") for key in REFERENCE_KEYS],
        name="reference_tables",
        required_resource_keys={"hutong"},
        description="Institutions (beds, physicians, type/grade, township) from the platform config and the "
        "resident population (township × sex × age band) from county.population_file.",
    )
    def reference_tables(context: AssetExecutionContext) -> Iterator[MaterializeResult]:
        result = stages.reference_tables(context.resources.hutong.load())
        if result.warning:
            context.log.warning(result.warning)
        yield MaterializeResult(asset_key=REFERENCE_KEYS[0], metadata={"institutions": result.institutions})
        yield MaterializeResult(
            asset_key=REFERENCE_KEYS[1],
            metadata={"rows": result.population_rows, "residents": result.population_total,
                      "file": str(result.population_file or ""), "warning": result.warning},
        )  # fmt: skip

    return reference_tables
