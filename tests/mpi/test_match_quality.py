"""Pairwise precision and recall of the MPI against the synthetic county's ground truth, hard non-matches
(twins, same-name residents, members of one household: parent and child) included."""

from __future__ import annotations

import polars as pl
import pytest

from mpi.link import run_mpi
from tests.mpi.county import KEY, copy_raw, pair_counts, truth
from warehouse import Warehouse


@pytest.fixture(scope="module")
def linked(county, tmp_path_factory):
    """The county's identities with their EMPI id and true person id (DuckDB index built from scratch)."""
    url = f"duckdb:///{tmp_path_factory.mktemp('mpi_quality') / 'w.duckdb'}"
    with Warehouse(url) as wh:
        copy_raw(county.config.warehouse_url, wh)
        result = run_mpi(wh, county.townships)
        xref = wh.query_df("SELECT org_code, source_system, local_id, empi_id, link_method FROM mpi.xref")
    frame = xref.join(truth(county, county.config.warehouse_url), on=KEY, how="left")
    return result, frame


def test_every_identity_has_truth_and_one_empi(linked):
    result, frame = linked
    assert frame.height == result.identities > 500
    assert frame["person_id"].null_count() == 0
    assert frame.select(KEY).is_duplicated().sum() == 0
    assert set(frame["source_system"]) >= {"HIS-A", "HIS-B", "LIS", "PACS", "EMR", "PH"}


def test_pairwise_precision_and_recall(linked):
    _, frame = linked
    tp, predicted, actual = pair_counts(frame, "empi_id", "person_id")
    assert actual > 500  # many true links across systems and institutions
    precision, recall = tp / predicted, tp / actual
    assert precision >= 0.999, (precision, recall)
    assert recall >= 0.99, (precision, recall)


def test_hard_non_matches_stay_apart(linked, county):
    _, frame = linked
    persons = pl.read_csv(county.truth_dir / "persons.csv", infer_schema=False)
    seen = frame.select("person_id", "empi_id").unique()
    twins = persons.filter(pl.col("twin_of").is_not_null() & (pl.col("twin_of") != "")).select(
        pl.col("person_id").alias("a"), pl.col("twin_of").alias("b")
    )
    same_name = persons.join(persons, on=["name", "sex"]).filter(pl.col("person_id") < pl.col("person_id_right"))
    household = persons.join(persons, on="household_id").filter(pl.col("person_id") < pl.col("person_id_right"))
    hard = pl.concat(
        [
            twins.with_columns(pl.lit("twin").alias("kind")),
            same_name.select(
                pl.col("person_id").alias("a"), pl.col("person_id_right").alias("b"), pl.lit("same_name").alias("kind")
            ),
            household.select(
                pl.col("person_id").alias("a"), pl.col("person_id_right").alias("b"), pl.lit("household").alias("kind")
            ),
        ]
    )
    pairs = hard.join(seen, left_on="a", right_on="person_id").join(
        seen, left_on="b", right_on="person_id", suffix="_b"
    )
    kinds = set(pairs["kind"])
    assert {"same_name", "household"} <= kinds, kinds  # the hard cases are really present in the identities
    wrongly_joined = pairs.filter(pl.col("empi_id") == pl.col("empi_id_b"))
    assert wrongly_joined.height == 0, wrongly_joined


def test_noisy_true_matches_are_linked(linked, county):
    """Identities carrying identity noise (typos, legacy ids, swapped dates, missing ids) still join their person."""
    _, frame = linked
    noise = pl.read_csv(county.truth_dir / "identity_noise.csv", infer_schema=False)
    noisy = frame.join(
        noise.select("org_code", pl.col("local_key").alias("local_id"), "noise_type"), on=["org_code", "local_id"]
    ).filter(pl.col("source_system").str.starts_with("HIS"))
    assert noisy.height > 20
    sizes = frame.group_by("person_id").agg(pl.col("empi_id").n_unique().alias("empis"), pl.len().alias("n"))
    multi = noisy.join(sizes, on="person_id").filter(pl.col("n") > 1)
    split = multi.filter(pl.col("empis") > 1)
    assert split.height <= max(1, multi.height // 20), split  # ≥ 95 % of noisy multi-record persons unsplit
