"""The analyst notebooks run top to bottom against a warehouse built through the normal stages (the small county of
tests/marts/conftest.py), on DuckDB and PostgreSQL, and show real figures with no identifier in clear."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ID_NO = re.compile(r"\b[1-6][0-9]{5}(19|20)[0-9]{2}[01][0-9][0-3][0-9]{4}[0-9Xx]\b")
PHONE = re.compile(r"\b1[3-9][0-9]{9}\b")


def _run(name: str, url: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Execute a notebook (kernel in the repo root, warehouse from HUTONG_WAREHOUSE_URL); its text outputs."""
    monkeypatch.setenv("HUTONG_WAREHOUSE_URL", url)
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", "") + str(out.get("data", {}).get("text/plain", "")))
    return texts


def _printed(texts: list[str], label: str) -> int:
    counts = [int(m.group(1)) for t in texts for m in re.finditer(rf"^(\d+) {label}$", t, re.M)]
    assert counts, f"no '<n> {label}' line in the notebook output"
    return counts[0]


def test_supervisor_indicator_walkthrough(county, monkeypatch):
    texts = _run("supervisor_indicators.ipynb", county.url, monkeypatch)
    assert _printed(texts, "rows") > 0  # monthly indicators by institution type
    joined = "\n".join(texts)
    assert "ph_record_rate" in joined and "wl_visits" in joined
    assert not ID_NO.search(joined) and not PHONE.search(joined)


def test_hospital_quality_followup(county, monkeypatch):
    texts = _run("hospital_quality_followup.ipynb", county.url, monkeypatch)
    assert _printed(texts, "scores") > 0
    joined = "\n".join(texts)
    assert "荥阳市人民医院" in joined  # the default institution: the first 二级医院
    assert not ID_NO.search(joined) and not PHONE.search(joined)  # problem records shown masked
