"""`make serve` loads the workspace's Definitions (workspace.yaml → pipelines.definitions.defs): every source,
dbt model, quality, access and export-feed asset is there, with a schedule for every feed's cron."""

from __future__ import annotations

from hutong.config import load_config
from marts.feed_config import load_feeds
from pipelines.definitions import build_definitions


def test_workspace_definitions_load_every_asset():
    config = load_config()  # the shipped county, as `dagster dev -w workspace.yaml` loads it
    defs = build_definitions(config)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    feeds = load_feeds()
    assert {f"feeds/{f.name}" for f in feeds} <= keys
    assert {"cdr/cdr__patient", "cdr/cdr__encounter", "analyst/access"} <= keys
    assert any(k.startswith("raw/") for k in keys) and any(k.startswith("quality") for k in keys)
    crons = {s.cron_schedule for s in defs.schedules if s.job_name == "export_feeds"}
    assert {f.schedule for f in feeds} <= crons
    assert {"ingest_sources", "export_feeds"} <= {j.name for j in defs.jobs}
