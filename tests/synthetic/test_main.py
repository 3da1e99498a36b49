"""`python -m synthetic`: the same county as `synthetic.generate`, and its next day."""

from __future__ import annotations

import json

import pytest

from synthetic.__main__ import main


def test_module_entry_point_generates_and_increments(tmp_path, capsys):
    assert main(["--size", "tiny", "--seed", "5", "--out", str(tmp_path), "--kinds", "his"]) == 0
    assert "2000 residents" in capsys.readouterr().out
    state = json.loads((tmp_path / "truth" / "generation.json").read_text(encoding="utf-8"))
    assert (state["size"], state["seed"], state["kinds"]) == ("tiny", 5, ["his"])
    assert main(["--next-day", "--out", str(tmp_path)]) == 0
    assert "increment 2026-11-01" in capsys.readouterr().out


def test_unknown_kind_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        main(["--size", "tiny", "--out", str(tmp_path), "--kinds", "his,xray"])
