"""The `hutong` command: stages listed, and configuration/warehouse problems reported as one clear line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import write_config

HUTONG = [sys.executable, "-m", "hutong.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*HUTONG, *args], capture_output=True, text=True, env=env, timeout=300)


def test_help_lists_every_stage():
    out = _run("--help")
    assert out.returncode == 0
    for stage in ("synth", "ingest", "transform", "quality", "export", "run", "demo", "init"):
        assert f"  {stage}" in out.stdout


def test_missing_config_is_one_line(tmp_path):
    out = _run("--config", str(tmp_path / "nope.yaml"), "init")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "config file" in lines[0] and "--config" in lines[0]


def test_unreachable_warehouse_is_one_line(tmp_path):
    config = write_config(tmp_path, "postgresql://postgres@127.0.0.1:1/hutong")
    out = _run("--config", str(config.path), "init")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach PostgreSQL warehouse" in lines[0]


def test_bad_setting_is_one_line(tmp_path):
    config = write_config(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    text = Path(config.path).read_text(encoding="utf-8").replace("type: 二级医院", "type: 三甲医院", 1)
    Path(config.path).write_text(text, encoding="utf-8")
    out = _run("--config", str(config.path), "init")
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "type '三甲医院' must be one of" in lines[0]


def test_unset_environment_variable_is_one_line(tmp_path):
    config = write_config(tmp_path, "duckdb:///placeholder.duckdb")
    text = (
        Path(config.path)
        .read_text(encoding="utf-8")
        .replace("duckdb:///placeholder.duckdb", "${HUTONG_TEST_UNSET_URL}")
    )
    Path(config.path).write_text(text, encoding="utf-8")
    out = _run("--config", str(config.path), "init")
    assert out.returncode == 1
    assert "HUTONG_TEST_UNSET_URL is not set" in out.stderr and len(out.stderr.strip().splitlines()) == 1
