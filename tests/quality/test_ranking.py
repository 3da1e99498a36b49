"""Peer ranking: institutions with equal scores share a rank (standard competition ranking 1, 2, 2, 4), in
quality.score, the institution pages, the regional overview and the CSV/XLSX export — on DuckDB and PostgreSQL."""

from __future__ import annotations

import csv
import re
from datetime import date

from quality.report import Institution, render_reports
from quality.runner import run_id_for
from quality.scoring import TOTAL, score_day
from warehouse import Warehouse, ensure_core

DAY = date(2026, 11, 1)
# org code → (name, failed of 100): two hospitals tie at 90; the tied pair's names sort against their codes, so
# neither a tie-break by name nor one by code can pass for a shared rank
HOSPITALS = {
    "H1": ("甲 Alpha hospital", 0),
    "H2": ("乙 Zeta hospital", 10),
    "H3": ("丙 Beta hospital", 10),
    "H4": ("丁 Delta hospital", 30),
}
EXPECTED = {"H1": 1, "H2": 2, "H3": 2, "H4": 4}
LISTED = [(1, "甲 Alpha hospital"), (2, "丙 Beta hospital"), (2, "乙 Zeta hospital"), (4, "丁 Delta hospital")]


def _results(wh: Warehouse) -> None:
    for org, (_, failed) in HOSPITALS.items():
        for rule, fails in (("PAT-REQUIRED-NAME", failed), ("ENC-START-TIME", failed // 2)):
            wh.execute(
                "INSERT INTO quality.check_result (run_id, day, org_code, dataset, rule_id, check_type, dimension, "
                "severity, evaluated, failed, status) VALUES (?, ?, ?, 'his_patient', ?, 'required', "
                "'completeness', 'error', 100, ?, 'evaluated')",
                [run_id_for(DAY), DAY, org, rule, fails],
            )


def _listed(html: str, pattern: str) -> list[tuple[int, str]]:
    return [(int(rank), name) for rank, name in re.findall(pattern, html)]


def test_tied_scores_share_a_rank_everywhere(warehouse_url, tmp_path):
    insts = [Institution(org, name, "二级医院") for org, (name, _) in HOSPITALS.items()]
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        _results(wh)
        score_day(wh, DAY, {org: "二级医院" for org in HOSPITALS})
        stored = {
            (scheme, period_type, org): rank
            for scheme, period_type, org, rank in wh.query(
                "SELECT scheme, period_type, org_code, rank FROM quality.score WHERE dimension = ?", [TOTAL]
            )
        }
        written = render_reports(wh, insts, DAY, tmp_path, "ranking test")
    for scheme in ("hospital", "regional"):
        for period_type in ("day", "month", "year"):  # roll-ups rank the same way
            assert {o: stored[(scheme, period_type, o)] for o in HOSPITALS} == EXPECTED
    peer_row = r'<tr class="(?:me)?"><td class="num">(\d+)</td><td>([^<]+)</td>'
    for org, rank in EXPECTED.items():
        page = written[org].read_text(encoding="utf-8")
        assert int(re.search(r'id="rank" data-rank="(\d+)"', page)[1]) == rank
        assert _listed(page, peer_row) == LISTED
    region = written["region"].read_text(encoding="utf-8")
    assert _listed(region, r'<td class="num">(\d+)</td><td><a href="[^"]+">([^<]+)</a>') == LISTED
    assert _listed(region, r'<tr><td class="num">(\d+)</td><td>([^<]+)</td>') == LISTED  # the hospital scheme
    with written["scores.csv"].open(encoding="utf-8-sig") as handle:
        rows = [r for r in csv.DictReader(handle) if r["dimension"] == TOTAL and r["period_type"] == "day"]
    assert {(r["scheme"], r["org_code"]): int(r["rank"]) for r in rows} == {
        (s, o): rank for s in ("hospital", "regional") for o, rank in EXPECTED.items()
    }
    from openpyxl import load_workbook

    sheet = load_workbook(written["quality_tables.xlsx"], read_only=True)["scores"]
    header, *values = [list(r) for r in sheet.iter_rows(values_only=True)]
    book = [dict(zip(header, r, strict=True)) for r in values]
    assert {
        (r["scheme"], r["org_code"]): r["rank"] for r in book if r["dimension"] == TOTAL and r["period_type"] == "day"
    } == {(s, o): rank for s in ("hospital", "regional") for o, rank in EXPECTED.items()}
