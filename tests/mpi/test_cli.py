"""`hutong mpi …` end to end on a small index: run, PIX lookup, masked golden record, PDQ search, steward ops."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from hutong.cli import cli
from mpi.match import load_settings, weight_sql
from tests.conftest import write_config
from tests.mpi.county import copy_raw
from warehouse import Warehouse


def test_mpi_cli(tmp_path, county):
    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    config = write_config(tmp_path, url, synthetic_size=None)
    with Warehouse(url) as wh:
        copy_raw(county.config.warehouse_url, wh)
        org, system, local = wh.query(
            "SELECT _org_code, _source_system, patient_id FROM raw.his_patient ORDER BY 1, 2, 3 LIMIT 1"
        )[0]
    runner = CliRunner()

    def hutong(*args: str) -> str:
        result = runner.invoke(cli, ["--config", str(config.path), "mpi", *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    assert "new persons" in hutong("run")
    assert "0 new," in hutong("run")
    empi = hutong("lookup", system, local, "--org", org).strip()
    assert empi.startswith("E")
    masked = json.loads(hutong("golden", empi))
    clear = json.loads(hutong("golden", empi, "--unmask"))
    assert masked["empi_id"] == clear["empi_id"] == empi
    assert "*" in masked["name"] and "*" not in clear["name"]
    if clear["id_no"]:
        assert masked["id_no"] != clear["id_no"] and masked["id_no"][:6] == clear["id_no"][:6]
    hits = json.loads(hutong("search", "--name", clear["name"], "--birth-date", str(clear["birth_date"]), "--unmask"))
    assert hits[0]["empi_id"] == empi
    assert any(x["local_id"] == local for x in json.loads(hutong("xref", empi)))
    other = json.loads(hutong("search", "--name", "王", "--birth-date", "2000-01-01"))  # may be empty
    assert isinstance(other, list)
    with Warehouse(url, read_only=True) as wh:
        second = wh.scalar("SELECT min(empi_id) FROM mpi.person WHERE empi_id <> ?", [empi])
    assert "event" in hutong("merge", empi, second, "--reason", "test", "--actor", "dora")
    assert json.loads(hutong("golden", second, "--unmask"))["empi_id"] == empi
    assert "event" in hutong("unmerge", second, "--reason", "undo", "--actor", "dora")
    kinds = [h["event_type"] for h in json.loads(hutong("history", second))]
    assert "merge" in kinds and "split" in kinds
    assert json.loads(hutong("candidates")) == []
    trained_path = tmp_path / "trained.yaml"
    assert "trained settings written" in hutong("train", "--out", str(trained_path), "--max-pairs", "20000")
    trained, shipped = yaml.safe_load(trained_path.read_text(encoding="utf-8")), load_settings()
    assert [c["output_column_name"] for c in trained["comparisons"]] == [
        c["output_column_name"] for c in shipped["comparisons"]
    ]
    assert trained["comparisons"] != shipped["comparisons"]  # m/u re-estimated
    levels = [lv for c in trained["comparisons"] for lv in c["comparison_levels"] if not lv.get("is_null_level")]
    assert all(0 < lv["m_probability"] <= 1 and 0 < lv["u_probability"] <= 1 for lv in levels)
    assert "-inf" not in weight_sql(trained) and "nan" not in weight_sql(trained)
    result = runner.invoke(cli, ["--config", str(config.path), "mpi", "unmerge", second, "--reason", "x"])
    assert result.exit_code != 0 and "no merge to undo" in result.output


def test_http_lookup_endpoint(tmp_path, county):
    import threading
    import urllib.error
    import urllib.request

    from mpi.link import run_mpi
    from mpi.serve import make_server

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with Warehouse(url) as wh:
        copy_raw(county.config.warehouse_url, wh)
        run_mpi(wh, county.townships)
        org, system, local, empi = wh.query("SELECT org_code, source_system, local_id, empi_id FROM mpi.xref LIMIT 1")[
            0
        ]
    server = make_server(url, county.townships, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"

    def get(path: str):
        with urllib.request.urlopen(base + path, timeout=30) as resp:
            return json.loads(resp.read())

    try:
        assert get(f"/pix?system={system}&local_id={local}&org={org}")["empi_id"] == empi
        assert any(x["local_id"] == local for x in get(f"/xref/{empi}"))
        golden = get(f"/golden/{empi}")
        assert golden["empi_id"] == empi and "*" in golden["name"]
        assert get("/pdq?" + urllib.parse.urlencode({"id_no": golden["id_no"] or "x"})) is not None
        with pytest.raises(urllib.error.HTTPError) as missing:
            get(f"/pix?system={system}&local_id=NOPE&org={org}")
        assert missing.value.code == 404
    finally:
        server.shutdown()
        server.server_close()
