"""Run dbt against the configured warehouse: environment for `dbt_project/profiles.yml` and a subprocess runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from hutong.config import PROJECT_ROOT
from warehouse import parse_url

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


class DbtError(Exception):
    """dbt failed; the message carries the failing nodes from dbt's output."""


def dbt_env(warehouse_url: str, target_path: Path | None = None) -> dict[str, str]:
    """Environment variables that point dbt's profile at the warehouse named by the URL."""
    target = parse_url(warehouse_url)
    env = {
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
        "DBT_PROFILES_DIR": str(DBT_PROJECT_DIR),
    }
    if target.dialect == "duckdb":
        env |= {"HUTONG_DBT_TARGET": "duckdb", "HUTONG_DUCKDB_PATH": str(target.path)}
    else:
        env |= {
            "HUTONG_DBT_TARGET": "postgres",
            "HUTONG_PG_HOST": target.host,
            "HUTONG_PG_PORT": str(target.port),
            "HUTONG_PG_USER": target.user,
            "HUTONG_PG_PASSWORD": target.password,
            "HUTONG_PG_DATABASE": target.database,
        }
    if target_path is not None:
        env |= {"DBT_TARGET_PATH": str(target_path), "DBT_LOG_PATH": str(target_path / "logs")}
    return env


def dbt_executable() -> str:
    """The `dbt` next to the running interpreter (the project's virtualenv)."""
    candidate = Path(sys.executable).parent / "dbt"
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    args: list[str],
    warehouse_url: str,
    *,
    target_path: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> str:
    """Run `dbt <args>` in the project; stream its log lines to `progress`; raise DbtError on failure."""
    env = {**os.environ, **dbt_env(warehouse_url, target_path)}
    command = [dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR)]
    lines: list[str] = []
    with subprocess.Popen(
        command, cwd=DBT_PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if progress:
                progress(line.rstrip())
        code = proc.wait()
    output = "\n".join(lines)
    if code != 0:
        failures = [ln for ln in lines if "ERROR" in ln or "FAIL" in ln or "Error" in ln]
        detail = "\n".join(failures[-15:]) or "\n".join(lines[-15:])
        raise DbtError(f"dbt {' '.join(args)} failed (exit {code}):\n{detail}")
    return output
