"""Reports: per-institution pages and the regional overview render in headless Chromium (non-blank screenshot),
show the figures that are in the database, mask identifying example values, and export CSV/XLSX tables."""

from __future__ import annotations

import csv
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from quality.catalog import load_catalog
from quality.report import ADVICE, Institution, render_reports
from quality.scoring import TOTAL
from tests.quality.conftest import DAY
from tests.quality.png import pixels
from warehouse import Warehouse

pytestmark = pytest.mark.xdist_group("quality_county")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--hide-scrollbars"]  # fmt: skip


def _screenshot(html: Path, png: Path) -> None:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium is missing: `make test` installs it (apt-get install chromium)"
    subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={png.parent / 'profile'}", "--window-size=1200,1600",
                    f"--screenshot={png}", html.as_uri()], check=True, capture_output=True, timeout=120)  # fmt: skip


def _not_blank(png: Path) -> None:
    width, height, px = pixels(png)
    assert width >= 1000 and height >= 1000
    colours = set(px[:: max(1, len(px) // 20000)])
    inked = sum(1 for p in px[::97] if sum(p) < 600) / len(px[::97])
    assert len(colours) > 10 and inked > 0.003, f"{png.name} looks blank"


@pytest.fixture(scope="module")
def reports(qcounty, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    insts = [Institution(i.org_code, i.name, i.type) for i in qcounty.config.institutions]
    with Warehouse(qcounty.url) as wh:
        written = render_reports(wh, insts, DAY, out, "荥阳市 (test)")
    return qcounty, written


def test_reports_render_in_chromium_and_match_the_database(reports, tmp_path):
    county, written = reports
    orgs = county.orgs
    assert set(written) >= {*orgs, "region", "scores.csv", "quality_tables.xlsx"}
    assert written["region"].parent.name == DAY.isoformat() and written["region"].parent.parent.name == "quality"
    with Warehouse(county.url) as wh:
        regional = {o: s for o, s in wh.query(
            "SELECT org_code, score FROM quality.score WHERE scheme = 'regional' AND period_type = 'day' "
            "AND dimension = ?", [TOTAL])}  # fmt: skip
        own = {(o, s): (sc, r) for o, s, sc, r in wh.query(
            "SELECT org_code, scheme, score, rank FROM quality.score WHERE period_type = 'day' AND dimension = ?",
            [TOTAL])}  # fmt: skip
        dims = {(o, s, d): sc for o, s, d, sc in wh.query(
            "SELECT org_code, scheme, dimension, score FROM quality.score WHERE period_type = 'day'")}  # fmt: skip
        worst = {o: f for o, f in wh.query(
            "SELECT org_code, max(failed) FROM quality.check_result WHERE failed > 0 GROUP BY org_code")}  # fmt: skip
    region = written["region"].read_text(encoding="utf-8")
    shown = {o: float(s) for o, s in re.findall(r'data-org="([^"]+)" data-score="([0-9.]+)"', region)}
    assert shown.keys() == regional.keys()
    assert all(shown[o] == pytest.approx(regional[o], abs=1e-4) for o in shown)
    for org in orgs:
        page = written[org].read_text(encoding="utf-8")
        scheme = "hospital" if "二级医院" in page else "primary_care"
        score, rank = own[(org, scheme)]
        assert float(re.search(r'id="total-score" data-score="([0-9.]+)"', page)[1]) == pytest.approx(score, abs=1e-4)
        assert int(re.search(r'id="rank" data-rank="(\d+)"', page)[1]) == rank
        for dim, value in re.findall(r'data-dimension="([a-z]+)" data-score="([0-9.]+)"', page):
            assert float(value) == pytest.approx(dims[(org, scheme, dim)], abs=1e-4)
        if org in worst:
            assert max(int(f) for f in re.findall(r'data-failed="(\d+)"', page)) == worst[org]
        assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name in ("region", orgs[0], orgs[-1]):
        png = tmp_path / f"{name}.png"
        _screenshot(written[name], png)
        _not_blank(png)


def test_examples_are_masked_and_tables_exported(reports):
    county, written = reports
    pages = "".join(written[o].read_text(encoding="utf-8") for o in county.orgs)
    # each worst rule says what to fix: its own advice from the catalog, else its check type's
    rules = {r.id: r for r in load_catalog()}
    rows = re.findall(r'data-rule="([^"]+)".*?</td>\s*<td>.*?</td>\s*<td class="num">.*?</td><td class="num">.*?</td>'
                      r"\s*<td>([^<]*)</td>", pages, flags=re.S)  # fmt: skip
    assert rows and any(rules[r].advice for r, _ in rows)  # the quarantined HL7/CDA lines have their own advice
    assert all(a == (rules[r].advice or ADVICE[rules[r].check_type]) for r, a in rows)
    ids = re.findall(r"id_(?:no|card_no)=<code>([^<]+)</code>", pages)
    assert ids and all("*" in v for v in ids if v != "∅")  # ID numbers in examples are masked (410182********1234)
    with Warehouse(county.url) as wh:
        problems = wh.count("quality.problem_record")
    with written["problem_records.csv"].open(encoding="utf-8-sig") as handle:
        assert len(list(csv.DictReader(handle))) == problems
    from openpyxl import load_workbook

    book = load_workbook(written["quality_tables.xlsx"], read_only=True)
    assert book.sheetnames == ["scores", "dataset_scores", "check_results", "problem_records"]
    assert book["problem_records"].max_row == problems + 1


def test_interop_readiness_matches_rule_results(reports):
    """Conformance = share of required WS 445 / WS 365 elements whose rules all pass ≥ 99 % (recomputed here)."""
    from quality.catalog import load_catalog
    from quality.interop import load_spec

    county, written = reports
    page = written["interop"].read_text(encoding="utf-8")
    shown = {o: float(c) for o, c in re.findall(r'data-org="([^"]+)" data-conformance="([0-9.]+)"', page)}
    assert set(shown) == {*county.orgs, "region"}
    spec = load_spec()
    by_col: dict[tuple[str, str], list[str]] = {}
    for r in load_catalog():
        if r.params.get("column"):
            by_col.setdefault((r.dataset.name, r.params["column"]), []).append(r.id)
    pooled = [0, 0]
    with Warehouse(county.url) as wh:
        for org in county.orgs:
            res = dict((k, (e, f)) for k, e, f in wh.query(
                "SELECT rule_id, evaluated, failed FROM quality.check_result WHERE org_code = ?", [org]))  # fmt: skip
            ok = total = 0
            for ds, entry in spec["datasets"].items():
                first = by_col[(ds, next(iter(entry["elements"])))][0]
                if res[first][0] == 0:
                    continue
                for column in entry["elements"]:
                    checks = [res[i] for i in by_col[(ds, column)]]
                    total += 1
                    ok += all(e and (e - f) / e >= spec["element_pass_rate"] for e, f in checks)
            assert shown[org] == pytest.approx(ok / total, abs=1e-6)
            pooled[0] += ok
            pooled[1] += total
    assert shown["region"] == pytest.approx(pooled[0] / pooled[1], abs=1e-6)
    assert "四级甲等" in page and written["interop"].with_suffix(".csv").is_file()
    png = written["interop"].parent / "interop.png"
    _screenshot(written["interop"], png)
    _not_blank(png)
