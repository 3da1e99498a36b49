"""Make sure dbt's manifest exists and is current before Dagster loads the dbt assets."""

from __future__ import annotations

import fcntl
from pathlib import Path

from hutong.dbt_runner import DBT_PROJECT_DIR, run_dbt

MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


def _newest_source(project: Path) -> float:
    files = [project / "dbt_project.yml", project / "profiles.yml"]
    for folder in ("models", "macros", "seeds", "tests"):
        files.extend(p for p in (project / folder).rglob("*") if p.is_file())
    return max(p.stat().st_mtime for p in files if p.exists())


def ensure_manifest(warehouse_url: str) -> Path:
    """Run `dbt parse` when the manifest is missing or older than any project file (locked across processes)."""
    MANIFEST.parent.mkdir(parents=True, exist_ok=True)
    with (MANIFEST.parent / ".parse.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not MANIFEST.exists() or MANIFEST.stat().st_mtime < _newest_source(DBT_PROJECT_DIR):
            run_dbt(["parse"], warehouse_url)
    return MANIFEST
