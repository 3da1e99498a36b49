"""Data-quality reports: one HTML page per institution (rank among peers, dimension scores, trend, worst rules with
masked example records, what to fix) and a regional overview for the health commission, plus CSV/Excel exports of
the quality tables. Files go to <reports>/quality/<day>/. Charts are inline SVG (no scripts, nothing remote)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from marts.masking import MASKS
from quality.catalog import DIMENSIONS, load_catalog
from quality.runner import run_id_for
from quality.scoring import TOTAL, load_schemes
from warehouse import Warehouse

TEMPLATES = Path(__file__).with_name("templates")
TREND_DAYS = 30
WORST_RULES = 8
EXAMPLES = 3
# which mask a checked column gets in examples (anything else identifying is not shown at all)
PII_COLUMNS = {"name": "name", "patient_name": "name", "family_name": "name", "given_name": "name",
               "id_no": "id_no", "id_card_no": "id_no", "phone": "phone", "address": "address"}  # fmt: skip
ADVICE = {
    "required": "补全必填数据元：在 HIS/前置机导出中为该字段赋值，空值记录修正后重新上传。",
    "in_set": "按标准值域 (WS 364 / HL7 表) 取值；本地自定义值请先在区域字典中登记对照。",
    "in_map": "本地代码未对照到国家标准值域：在区域术语对照表中补登对照，或改用标准代码。",
    "pattern": "格式不符：检查接口字段的格式化 (日期 YYYYMMDD、编码规则)。",
    "id_check_digit": "身份证号校验位错误 (GB 11643)：核对证件后更正，勿手工录入校验位。",
    "id_sex": "性别与身份证号第17位不一致：核对证件或性别登记。",
    "id_birth": "出生日期与身份证号不一致：以证件为准更正出生日期。",
    "range": "数值超出生理/业务可能范围：核对单位与录入，修正后重传。",
    "ref_range": "检验结果超出可能范围：核对仪器接口与单位换算。",
    "temporal_order": "时间先后颠倒：核对入出院/检查/报告时间的录入与时区。",
    "logic": "业务逻辑不符 (如出院记录无入院时间)：补全关联记录。",
    "referential": "关联记录缺失：确认被引用的患者/就诊/申请已一并上传。",
    "duplicate": "同一业务以两个编号重复登记：作废重复记录并通知上传方删除。",
    "timeliness": "晚于当日 24:00 截止时间上报：调整前置机上传计划，确保 T+1 前完成。",
    "file_timeliness": "文件晚于截止时间到达：调整导出与上传时间。",
    "quarantined": "上报内容无法解析：检查接口报文/文件格式后重新发送。",
    "stability": "上报中断或失败：检查前置机与网络，补传缺失日期。",
}


@dataclass(frozen=True)
class Institution:
    org_code: str
    name: str
    type: str


def _scheme_of(org_type: str) -> str:
    for s in load_schemes():
        if s.org_types and org_type in s.org_types:
            return s.name
    return "regional"


def bars_svg(items: list[tuple[str, float | None]], width: int = 420) -> str:
    """Horizontal bars (0–100) as inline SVG."""
    row, label_w = 22, 110
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(items) + 4}" role="img">']
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        v = 0.0 if value is None else max(0.0, min(100.0, value))
        w = (width - label_w - 60) * v / 100
        color = "#1b7f3b" if v >= 99 else "#d08700" if v >= 95 else "#b00020"
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">{label}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="14" fill="{color}"/>')
        text = "–" if value is None else f"{value:.2f}"
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="12">{text}</text>')
    parts.append("</svg>")
    return "".join(parts)


def sparkline_svg(points: list[tuple[str, float]], width: int = 420, height: int = 80) -> str:
    """Score trend (one point per scored day) as an inline SVG polyline with min/max labels."""
    if not points:
        return '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'
    values = [v for _, v in points]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = (width - 20) / max(len(points) - 1, 1)
    xy = [(10 + i * step, 10 + (height - 30) * (1 - (v - lo) / span)) for i, v in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1f5fa8"/>' for x, y in xy)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
        f'<polyline points="{line}" fill="none" stroke="#1f5fa8" stroke-width="2"/>{dots}'
        f'<text x="10" y="{height - 4}" font-size="11">{points[0][0]} … {points[-1][0]}  '
        f"min {lo:.2f} · max {hi:.2f}</text></svg>"
    )


def _examples(wh: Warehouse, rule_id: str, org: str, run_id: str) -> list[dict[str, Any]]:
    """A few failing records of a rule with the checked value, masked when it identifies a person."""
    rule = {r.id: r for r in load_catalog()}.get(rule_id)
    rows = wh.query_dicts(
        "SELECT record_key, raw_origin FROM quality.problem_record WHERE run_id = ? AND org_code = ? AND rule_id = ? "
        "ORDER BY record_key LIMIT ?",
        [run_id, org, rule_id, EXAMPLES],
    )
    column = str(rule.params.get("column", "")) if rule else ""
    if not rows or not rule or not column or rule.dataset.kind != "raw" or not wh.table_exists(rule.dataset.table):
        return rows
    if column not in wh.columns(rule.dataset.table):
        return rows
    mask = MASKS[PII_COLUMNS[column]] if column in PII_COLUMNS else None
    value = mask(column) if mask else column
    for r in rows:
        found = wh.query(
            f"SELECT {value} FROM {rule.dataset.table} WHERE _org_code = ? AND _source_key = ? "
            "ORDER BY _ingested_at DESC LIMIT 1",
            [org, r["record_key"]],
        )
        r["value"] = found[0][0] if found else None
        r["column"] = column
    return rows


def _institution_page(wh: Warehouse, inst: Institution, day: date, peers: list[dict[str, Any]]) -> dict[str, Any]:
    run_id = run_id_for(day)
    scheme = _scheme_of(inst.type)
    dims = {
        r["dimension"]: r
        for r in wh.query_dicts(
            "SELECT dimension, score, evaluated, failed, rank, peers FROM quality.score WHERE scheme = ? "
            "AND org_code = ? AND period_type = 'day' AND period = ?",
            [scheme, inst.org_code, day.isoformat()],
        )
    }
    total = dims.get(TOTAL, {})
    first = (day - timedelta(days=TREND_DAYS)).isoformat()
    trend = [
        (str(p), float(s))
        for p, s in wh.query(
            "SELECT period, score FROM quality.score WHERE scheme = ? AND org_code = ? AND period_type = 'day' "
            "AND dimension = ? AND period > ? AND period <= ? ORDER BY period",
            [scheme, inst.org_code, TOTAL, first, day.isoformat()],
        )
    ]
    datasets = wh.query_dicts(
        "SELECT dataset, score, evaluated, failed FROM quality.dataset_score WHERE scheme = ? AND org_code = ? "
        "AND period_type = 'day' AND period = ? AND dimension = ? ORDER BY score, dataset",
        [scheme, inst.org_code, day.isoformat(), TOTAL],
    )
    worst = wh.query_dicts(
        "SELECT rule_id, dataset, dimension, severity, check_type, evaluated, failed FROM quality.check_result "
        "WHERE run_id = ? AND org_code = ? AND failed > 0 ORDER BY CAST(failed AS DOUBLE PRECISION) / evaluated DESC, "
        "failed DESC, rule_id LIMIT ?",
        [run_id, inst.org_code, WORST_RULES],
    )
    rules = {r.id: r for r in load_catalog()}
    for w in worst:
        w["pass_rate"] = 100.0 * (1 - w["failed"] / w["evaluated"])
        rule = rules.get(w["rule_id"])
        w["description"] = rule.description if rule else ""
        w["advice"] = (rule.advice if rule else "") or ADVICE.get(w["check_type"], "")
        w["dimension_zh"] = DIMENSIONS.get(w["dimension"], w["dimension"])
        w["examples"] = _examples(wh, w["rule_id"], inst.org_code, run_id)
    dim_items = [(f"{DIMENSIONS[d]} {d}", dims[d]["score"]) for d in DIMENSIONS if d in dims]
    return {
        "inst": inst, "scheme": scheme, "total": total, "dims": dims, "dim_order": list(DIMENSIONS),
        "dimension_names": DIMENSIONS, "dim_svg": bars_svg(dim_items), "trend": trend,
        "trend_svg": sparkline_svg(trend), "datasets": datasets, "worst": worst,
        "peers": [p for p in peers if p["scheme"] == scheme],
    }  # fmt: skip


def export_tables(wh: Warehouse, day: date, out_dir: Path) -> list[Path]:
    """The day's quality tables as CSV, and one workbook (.xlsx) with a sheet each when openpyxl is installed."""
    queries = {
        "scores": ("SELECT * FROM quality.score WHERE period = ? OR period_type <> 'day' ORDER BY scheme, org_code, "
                   "period_type, period, dimension", [day.isoformat()]),
        "dataset_scores": ("SELECT * FROM quality.dataset_score WHERE period = ? ORDER BY scheme, org_code, dataset, "
                           "dimension", [day.isoformat()]),
        "check_results": ("SELECT * FROM quality.check_result WHERE run_id = ? ORDER BY org_code, rule_id",
                          [run_id_for(day)]),
        "problem_records": ("SELECT * FROM quality.problem_record WHERE run_id = ? ORDER BY org_code, rule_id, "
                            "record_key", [run_id_for(day)]),
    }  # fmt: skip
    written: list[Path] = []
    sheets: dict[str, list[dict[str, Any]]] = {}
    for name, (sql, params) in queries.items():
        rows = wh.query_dicts(sql, params)
        sheets[name] = rows
        path = out_dir / f"{name}.csv"
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            cols = list(rows[0]) if rows else []
            writer = csv.writer(handle)
            writer.writerow(cols)
            writer.writerows([[r[c] for c in cols] for r in rows])
        written.append(path)
    try:
        from openpyxl import Workbook
    except ImportError:  # pragma: no cover - openpyxl is a dependency; CSV is enough without it
        return written
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        cols = list(rows[0]) if rows else []
        sheet.append(cols)
        for r in rows:
            sheet.append([r[c] if not hasattr(r[c], "isoformat") else r[c].isoformat() for c in cols])
    path = out_dir / "quality_tables.xlsx"
    book.save(path)
    written.append(path)
    return written


def render_reports(wh: Warehouse, institutions: list[Institution], day: date, reports_root: Path,
                   title: str) -> dict[str, Path]:  # fmt: skip
    """Write <reports_root>/quality/<day>/: <org>.html per institution, region.html, CSV/XLSX tables."""
    out_dir = reports_root / "quality" / day.isoformat()
    out_dir.mkdir(parents=True, exist_ok=True)
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))
    names = {i.org_code: i for i in institutions}
    peers = wh.query_dicts(
        "SELECT scheme, org_code, org_type, score, rank, peers, evaluated, failed FROM quality.score "
        "WHERE period_type = 'day' AND period = ? AND dimension = ? ORDER BY scheme, rank",
        [day.isoformat(), TOTAL],
    )
    for p in peers:
        p["name"] = names[p["org_code"]].name if p["org_code"] in names else p["org_code"]
    peers.sort(key=lambda p: (p["scheme"], p["rank"] or 0, p["name"]))  # tied ranks (1, 2, 2, 4) listed by name
    written: dict[str, Path] = {}
    page = env.get_template("institution.html")
    for inst in institutions:
        ctx = _institution_page(wh, inst, day, peers)
        path = out_dir / f"{inst.org_code}.html"
        path.write_text(page.render(title=title, day=day.isoformat(), **ctx), encoding="utf-8")
        written[inst.org_code] = path
    dims = wh.query_dicts(
        "SELECT org_code, dimension, score FROM quality.score WHERE scheme = 'regional' AND period_type = 'day' "
        "AND period = ?",
        [day.isoformat()],
    )
    grid: dict[str, dict[str, float]] = {}
    for d in dims:
        grid.setdefault(d["org_code"], {})[d["dimension"]] = d["score"]
    regional = [p for p in peers if p["scheme"] == "regional"]
    region = env.get_template("region.html").render(
        title=title, day=day.isoformat(), regional=regional, grid=grid, dimensions=DIMENSIONS, peers=peers,
        schemes={s.name: s.title for s in load_schemes()},
        bars=bars_svg([(p["name"][:8], p["score"]) for p in regional], width=520),
    )  # fmt: skip
    written["region"] = out_dir / "region.html"
    written["region"].write_text(region, encoding="utf-8")
    written["interop"] = render_interop(wh, env, institutions, day, out_dir, title)
    for path in export_tables(wh, day, out_dir):
        written[path.name] = path
    return written


def render_interop(wh: Warehouse, env: Environment, institutions: list[Institution], day: date, out_dir: Path,
                   title: str) -> Path:  # fmt: skip
    """interop.html and interop.csv: 互联互通测评 readiness per institution and for the region."""
    from quality.interop import FIGURES, load_spec, readiness, regional

    rows = readiness(wh, day, [i.org_code for i in institutions])
    rows.append(regional(rows))
    spec = load_spec()
    labels = {i.org_code: i.name for i in institutions} | {"region": "全区域 region"}
    html = env.get_template("interop.html").render(
        title=title, day=day.isoformat(), rows=rows, figures=FIGURES, names=DIMENSIONS, labels=labels,
        target=spec["target"], share=float(spec["element_pass_rate"]),
    )  # fmt: skip
    path = out_dir / "interop.html"
    path.write_text(html, encoding="utf-8")
    with (out_dir / "interop.csv").open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["org_code", "conformance", "elements", "conforming", *FIGURES, "level", "gaps"])
        for r in rows:
            writer.writerow([r.org_code, r.conformance, r.elements, r.conforming, *(r.figures[d] for d in FIGURES),
                             r.level or "", " | ".join(r.gaps)])  # fmt: skip
    return path
