"""Dagster: catalog rules run as asset checks on raw assets (an `error` rule failing fails the check), and the daily
quality score asset materialises one day partition (scores and reports)."""

from __future__ import annotations

import pytest
from dagster import AssetKey, asset, materialize

from pipelines.definitions import HutongConfig
from pipelines.quality import quality_asset_checks, quality_score_asset
from tests.quality.conftest import DAY
from warehouse import Warehouse

pytestmark = pytest.mark.xdist_group("quality_county")


@pytest.mark.parametrize("qcounty", ["duckdb"], indirect=True)  # Dagster wiring; the rules run on both elsewhere
def test_asset_checks_and_daily_score(qcounty):
    keys = [AssetKey(["raw", "his_patient"]), AssetKey(["raw", "lis_result"]), AssetKey(["cdr", "cdr__patient"])]
    checks = quality_asset_checks(keys)
    assert {c.check_key.name for c in checks} >= {"quality_his_patient", "quality_lis_result",
                                                    "quality_cdr_patient"}  # fmt: skip

    @asset(key=keys[0])
    def his_patient() -> None:  # stands in for the raw asset: the table is already landed
        return None

    resources = {"hutong": HutongConfig(config_path=str(qcounty.config.path))}
    mine = [c for c in checks if c.check_key.asset_key == keys[0]]
    result = materialize([his_patient, *mine], resources=resources)
    evaluation = result.get_asset_check_evaluations()[0]
    with Warehouse(qcounty.url) as wh:
        failed = wh.scalar(
            "SELECT sum(failed) FROM quality.check_result WHERE dataset = 'his_patient' AND severity = 'error'"
        )
    assert evaluation.passed == (failed == 0) and evaluation.metadata["failed"].value >= failed

    scored = materialize([quality_score_asset(qcounty.config)], partition_key=DAY.isoformat(), resources=resources)
    assert scored.success
    meta = scored.get_asset_materialization_events()[0].materialization.metadata
    assert meta["scored_rows"].value > 0
    report = qcounty.config.data_dir / "reports" / "quality" / DAY.isoformat() / "region.html"
    assert report.is_file()
