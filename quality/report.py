"""Institution data-quality report: one HTML page per run, readable by hospital IT staff."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from quality.runner import run_id_for
from warehouse import Warehouse

TEMPLATES = Path(__file__).with_name("templates")
SAMPLE_PROBLEMS = 20


def render_report(wh: Warehouse, institutions: list[tuple[str, str]], day: date, out_dir: Path, title: str) -> Path:
    """Write `quality_<day>.html` with per-institution rule results and sample failing records."""
    run_id = run_id_for(day)
    results = wh.query_dicts(
        "SELECT org_code, rule_id, dataset, dimension, severity, evaluated, failed FROM quality.check_result "
        "WHERE run_id = ? ORDER BY org_code, rule_id",
        [run_id],
    )
    problems = wh.query_dicts(
        "SELECT org_code, rule_id, record_key, raw_origin, batch_id FROM ("
        " SELECT *, row_number() OVER (PARTITION BY org_code, rule_id ORDER BY record_key) AS n"
        " FROM quality.problem_record WHERE run_id = ?) t WHERE n <= ? ORDER BY org_code, rule_id, record_key",
        [run_id, SAMPLE_PROBLEMS],
    )
    sections = []
    for org_code, name in institutions:
        rows = [r for r in results if r["org_code"] == org_code]
        evaluated = sum(r["evaluated"] for r in rows)
        failed = sum(r["failed"] for r in rows)
        for r in rows:
            r["pass_rate"] = None if r["evaluated"] == 0 else 100.0 * (r["evaluated"] - r["failed"]) / r["evaluated"]
        sections.append(
            {
                "org_code": org_code,
                "name": name,
                "rules": rows,
                "pass_rate": None if evaluated == 0 else 100.0 * (evaluated - failed) / evaluated,
                "problems": [p for p in problems if p["org_code"] == org_code],
            }
        )
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    html = env.get_template("report.html").render(title=title, day=day.isoformat(), sections=sections)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"quality_{day.isoformat()}.html"
    path.write_text(html, encoding="utf-8")
    return path
