"""CSV export feeds: stream a feed's rows per institution to files and record each file in feeds.delivery."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from marts.masking import MASKS
from quality.runner import run_id_for
from warehouse import Warehouse, ensure_core

FEEDS_DIR = Path(__file__).with_name("feeds")


@dataclass(frozen=True)
class Delivery:
    delivery_id: str
    org_code: str
    path: Path
    record_count: int
    held_back: int
    checksum: str


@cache
def load_feed(name: str) -> dict[str, Any]:
    path = FEEDS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown feed {name!r}; known: {', '.join(p.stem for p in FEEDS_DIR.glob('*.yaml'))}")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _encounter_sql(feed: dict[str, Any]) -> str:
    """Rows of the encounter feed for one institution, gated on the quality run and masked."""
    masks = feed["masking"]
    return f"""
        SELECT e.encounter_key, e.org_code, e.local_encounter_id, e.encounter_class_code, e.encounter_class_name,
               e.start_time, e.end_time, e.dept_code, e.dept_name, e.diagnosis_source_code, e.diagnosis_name,
               e.patient_key, e.empi_id,
               {MASKS[masks["patient_name"]]("p.name")} AS patient_name,
               p.sex_code,
               CAST(extract(year FROM p.birth_date) AS INTEGER) AS birth_year,
               {MASKS[masks["id_no"]]("p.id_no")} AS id_no,
               {MASKS[masks["phone"]]("p.phone")} AS phone,
               e._origin, e._batch_id, e._source_key, e._record_hash
        FROM cdr.cdr__encounter e
        LEFT JOIN cdr.cdr__patient p ON p.patient_key = e.patient_key
        WHERE e.org_code = ?
          AND NOT EXISTS (
              SELECT 1 FROM quality.problem_record q JOIN quality.check_result c
                ON c.run_id = q.run_id AND c.rule_id = q.rule_id AND c.org_code = q.org_code
              WHERE q.run_id = ? AND c.severity = 'error'
                AND ((q.dataset = 'cdr.cdr__encounter' AND q.record_key = e.encounter_key)
                  OR (q.dataset = 'cdr.cdr__patient' AND q.record_key = e.patient_key)))
        ORDER BY e.encounter_key
    """


def _csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def export_encounters(wh: Warehouse, org_codes: list[str], period: date, out_dir: Path) -> list[Delivery]:
    """Write `<out_dir>/encounter_csv/<period>/<org>.csv` per institution (UTF-8 with BOM for Excel users)."""
    ensure_core(wh)
    feed = load_feed("encounter_csv")
    columns: list[str] = feed["columns"]
    run_id = run_id_for(period)
    if not wh.scalar("SELECT count(*) FROM quality.check_result WHERE run_id = ?", [run_id]):
        raise RuntimeError(f"no quality run for {period}; run `hutong quality` before exporting (quality gate)")
    folder = out_dir / feed["feed"] / period.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    deliveries = []
    sql = _encounter_sql(feed)
    for org in org_codes:
        path = folder / f"{org}.csv"
        tmp = path.with_suffix(".csv.part")
        count = 0
        with tmp.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for batch in wh.iter_batches(sql, [org, run_id]):
                for row in batch.select(columns).iter_rows():
                    writer.writerow([_csv_value(v) for v in row])
                count += batch.height
        tmp.replace(path)
        digest = _sha256(path)
        total = wh.count("cdr.cdr__encounter", "org_code = ?", [org])
        delivery_id = hashlib.sha1(f"{feed['feed']}|{feed['target']}|{org}|{period}".encode()).hexdigest()[:20]
        deliveries.append(Delivery(delivery_id, org, path, count, total - count, digest))
    now = datetime.now().replace(microsecond=0)
    with wh.transaction():
        for d in deliveries:
            wh.execute("DELETE FROM feeds.delivery WHERE delivery_id = ?", [d.delivery_id])
            wh.execute(
                "INSERT INTO feeds.delivery (delivery_id, feed, target, org_code, period, file_name, record_count, "
                "checksum, status, attempts, receipt, created_at, delivered_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'delivered', 1, ?, ?, ?)",
                [
                    d.delivery_id, feed["feed"], feed["target"], d.org_code, period.isoformat(), str(d.path),
                    d.record_count, f"sha256:{d.checksum}", f"written; {d.held_back} held back by quality gate",
                    now, now,
                ],
            )  # fmt: skip
    return deliveries
