"""Compare quality findings with the synthetic county's labelled defects (truth/defects.csv): which labelled
defects the rule they should trigger found, and which findings hit records that carry no label."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from quality.catalog import load_catalog
from warehouse import Warehouse


@dataclass(frozen=True)
class Defect:
    org_code: str
    source_kind: str
    source_table: str
    local_key: str
    defect_type: str
    expected_rule: str


def read_defects(truth_dir: Path) -> list[Defect]:
    with (truth_dir / "defects.csv").open(encoding="utf-8") as handle:
        return [
            Defect(
                r["org_code"], r["source_kind"], r["source_table"], r["local_key"], r["defect_type"], r["expected_rule"]
            )
            for r in csv.DictReader(handle)
        ]


def read_noise(truth_dir: Path) -> set[tuple[str, str]]:
    """(org, local key) of records with identity noise (a real inconsistency, but labelled as noise, not defect)."""
    path = truth_dir / "identity_noise.csv"
    if not path.is_file():
        return set()
    with path.open(encoding="utf-8") as handle:
        return {(r["org_code"], r["local_key"]) for r in csv.DictReader(handle)}


def record_ids(record_key: str, origin: str) -> set[str]:
    """The local ids a finding can be matched by: the source key without table prefix / sub-ids, the origin."""
    ids = {record_key, origin}
    tail = record_key.split(":", 1)[-1] if ":" in record_key else record_key
    ids |= {tail, record_key.split(":", 1)[0], origin.split("#", 1)[-1], origin.rsplit("/", 1)[-1]}
    file = origin.split("#", 1)[0]
    ids |= {file, file.rsplit("/", 1)[-1], file.rsplit("/", 1)[-1].rsplit(".", 1)[0]}
    return ids


def findings(wh: Warehouse, run_id: str) -> list[tuple[str, str, str, set[str]]]:
    """(org, rule label, rule id, matchable ids) of every problem record in the run."""
    labels = {r.id: r.label for r in load_catalog()}
    return [
        (org, labels.get(rule, rule), rule, record_ids(str(key), str(origin or "")))
        for org, rule, key, origin in wh.query(
            "SELECT org_code, rule_id, record_key, raw_origin FROM quality.problem_record WHERE run_id = ?", [run_id]
        )
    ]


def compare(wh: Warehouse, run_id: str, truth_dir: Path) -> tuple[list[Defect], list[tuple[str, str, set[str]]]]:
    """(labelled defects not found by their rule, findings of a labelled rule family on unlabelled records)."""
    defects = read_defects(truth_dir)
    noise = read_noise(truth_dir)
    found = findings(wh, run_id)
    by_label: dict[tuple[str, str], list[set[str]]] = {}
    for org, label, _, ids in found:
        by_label.setdefault((org, label), []).append(ids)
    missed = [
        d for d in defects
        if not any(d.local_key in ids or f"{d.source_table}#{d.local_key}" in ids
                   or (d.expected_rule.endswith("-PARSE") and d.source_table in ids)
                   for ids in by_label.get((d.org_code, d.expected_rule), []))
    ]  # fmt: skip
    labelled = {(d.org_code, d.local_key) for d in defects}  # file-level defects carry the file name as key
    # a message that lost its header (or a file that cannot be read) is known by its file only
    labelled |= {(d.org_code, d.source_table) for d in defects if d.expected_rule.endswith("-PARSE")}
    families = {d.expected_rule for d in defects}
    false = [
        (org, rule, ids) for org, label, rule, ids in found
        if label in families and not any((org, i) in labelled or (org, i) in noise for i in ids)
    ]  # fmt: skip
    return missed, false
