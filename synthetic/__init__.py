"""The synthetic county: realistic source systems with ground truth and labelled defects."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from synthetic.events import WriterContext
from synthetic.his import SYSTEMS, HisCounts, Truth, generate_institution, plan_institutions
from synthetic.population import generate_population
from synthetic.registry import WRITER_MODULES, make_writer

HERE = Path(__file__).parent
PERSON_FIELDS = ["person_id", "household_id", "name", "sex", "birth_date", "id_no", "township_code", "township_name",
                 "address", "phone", "ethnicity", "marital", "insurance", "twin_of"]  # fmt: skip


@dataclass
class GenerationSummary:
    """What `generate` wrote."""

    size: str
    seed: int
    out_dir: Path
    truth_dir: Path
    persons: int = 0
    start: date | None = None
    end: date | None = None
    his: dict[str, HisCounts] = field(default_factory=dict)
    other: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)  # org → kind → counts

    @property
    def records(self) -> int:
        his = sum(c.patients + c.outpatient + c.inpatient for c in self.his.values())
        other = sum(n for kinds in self.other.values() for counts in kinds.values() for n in counts.values())
        return self.persons + his + other


def listeners_for(
    config: Any, plan: Any, index: int, out_dir: Path, truth: Any, seed: int, start: date, end: date,
    profiles: dict[str, Any], kinds: tuple[str, ...] | None,
) -> list[Any]:  # fmt: skip
    """The lab / imaging / EMR / public-health writers of one institution for a date range."""
    inst = config.institution(plan.org_code)
    wanted = [k for k in WRITER_MODULES if k in inst.sources and (kinds is None or k in kinds)]
    return [
        make_writer(kind, WriterContext(
            org_code=inst.org_code, short=inst.short, name=inst.name, institution_type=inst.type,
            his_system=SYSTEMS[plan.vendor], settings=dict(inst.sources[kind].settings),
            out_dir=out_dir / "sources" / inst.org_code / kind, people=plan.pool.people, truth=truth,
            seed=seed * 1009 + index * 31 + position, start=start, end=end, profiles=profiles,
            defect_multiplier=plan.defect_multiplier,
        ))
        for position, kind in enumerate(wanted, start=1)
    ]  # fmt: skip


def load_sizes() -> dict[str, Any]:
    return yaml.safe_load((HERE / "sizes.yaml").read_text(encoding="utf-8"))


def load_profiles() -> dict[str, Any]:
    return yaml.safe_load((HERE / "profiles.yaml").read_text(encoding="utf-8"))


def generate(
    config: Any,
    size: str = "demo",
    out_dir: Path | None = None,
    seed: int = 20261124,
    his_url_template: str | None = None,
    kinds: tuple[str, ...] | None = None,
    progress: Callable[[str], None] | None = None,
) -> GenerationSummary:
    """Generate the county's residents and every institution's HIS in its vendor schema, plus ground truth.

    HIS go to `{out_dir}/sources/{org_code}/his.sqlite`, or to `his_url_template` formatted with the
    institution's `org_code`/`short` (e.g. "mysql+pymysql://root@127.0.0.1:3306/his_{short}").
    Other source kinds an institution has in the config (lis, pacs, emr, public_health; all unless `kinds`
    narrows them) are written below `{out_dir}/sources/{org_code}/{kind}/` from the same encounters.
    Truth goes to `{out_dir}/truth/`: persons.csv, source_records.csv, defects.csv.
    """
    sizes = load_sizes()
    if size not in sizes["sizes"]:
        raise ValueError(f"unknown synthetic size {size!r}; choose one of {', '.join(sizes['sizes'])}")
    spec = sizes["sizes"][size]
    end = date.fromisoformat(sizes["end_date"])
    start = end - timedelta(days=int(spec["days"]) - 1)
    out_dir = Path(out_dir or config.data_dir)
    truth_dir = out_dir / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    summary = GenerationSummary(size, seed, out_dir, truth_dir, start=start, end=end)
    if progress:
        progress(f"population of {spec['persons']} residents")
    people = generate_population(config.county, int(spec["persons"]), seed, end)
    summary.persons = len(people)
    with (truth_dir / "persons.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PERSON_FIELDS)
        for p in people:
            writer.writerow([getattr(p, f) for f in PERSON_FIELDS])
    profiles = load_profiles()
    plans = plan_institutions(config, people, int(spec["days"]), profiles, end)
    from synthetic.writers import TableWriter

    with (
        (truth_dir / "source_records.csv").open("w", encoding="utf-8", newline="") as rec_handle,
        (truth_dir / "defects.csv").open("w", encoding="utf-8", newline="") as def_handle,
        (truth_dir / "identity_noise.csv").open("w", encoding="utf-8", newline="") as noise_handle,
    ):
        records, defects = csv.writer(rec_handle), csv.writer(def_handle)
        records.writerow(["org_code", "source_system", "entity", "source_table", "local_key", "person_id"])
        defects.writerow(["org_code", "source_kind", "source_table", "local_key", "defect_type", "field",
                          "expected_rule"])  # fmt: skip
        noise = csv.writer(noise_handle)
        noise.writerow(["org_code", "source_table", "local_key", "person_id", "noise_type", "field"])
        truth = Truth(records=records.writerows, defects=defects.writerows, noise=noise.writerows)
        for index, plan in enumerate(plans):
            if his_url_template:
                target = his_url_template.format(org_code=plan.org_code, short=plan.short.lower())
            else:
                target = f"sqlite:///{out_dir / 'sources' / plan.org_code / 'his.sqlite'}"
            if progress:
                progress(f"HIS {plan.short} ({index + 1}/{len(plans)})")
            listeners = listeners_for(config, plan, index, out_dir, truth, seed, start, end, profiles, kinds)
            summary.his[plan.org_code] = generate_institution(
                plan, TableWriter(target), truth, profiles["care"], start, end, seed * 1009 + index, listeners
            )
            summary.other[plan.org_code] = {writer.kind: writer.finish() for writer in listeners}
    state = {
        "size": size, "seed": seed, "start": start.isoformat(), "end": end.isoformat(), "last_day": end.isoformat(),
        "his_url_template": his_url_template, "kinds": list(kinds) if kinds else None,
        "next_seq": {org: counts.next_seq for org, counts in summary.his.items()},
    }  # fmt: skip
    (truth_dir / "generation.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    return summary


from synthetic.daily import IncrementSummary, increment  # noqa: E402  (daily uses the helpers above)

__all__ = ["GenerationSummary", "IncrementSummary", "generate", "increment", "listeners_for"]
