"""Dagster runs dbt through dagster-dbt: every dbt model is an asset downstream of the raw tables it reads
and of the MPI asset (mpi.xref / mpi.person sources map to AssetKey(["mpi"]))."""

from __future__ import annotations

from pathlib import Path

from dagster import AssetKey

from pipelines.definitions import MPI_KEY, build_definitions
from tests.conftest import write_config


def _parents(graph, *path: str) -> set[str]:
    return {k.to_user_string() for k in graph.get(AssetKey(list(path))).parent_keys}


def test_dbt_models_are_assets_downstream_of_raw_and_mpi(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"duckdb:///{tmp_path / 'wh.duckdb'}")
    graph = build_definitions(config).resolve_asset_graph()
    assert {"raw/lis_result", "mpi", "staging/stg_lis__result"} <= _parents(graph, "cdr", "cdr__lab_result")
    assert {"raw/his_patient", "terminology/map_his__sex"} <= _parents(graph, "staging", "stg_his__patient")
    assert "mpi" in _parents(graph, "cdr", "cdr__patient")
    assert "staging/stg_his__encounter" in _parents(graph, "cdr", "cdr__encounter")
    assert "raw/his_patient" in _parents(graph, "staging", "stg_his__patient")
    assert graph.has(MPI_KEY)
    # every raw table a staging model reads is the asset the ingestion job materialises
    raw_assets = {k.to_user_string() for k in graph.get_all_asset_keys() if k.path[0] == "raw"}
    staging = [k for k in graph.get_all_asset_keys() if k.path[0] == "staging"]
    for key in staging:
        assert {p for p in _parents(graph, *key.path) if p.startswith("raw/")} <= raw_assets
