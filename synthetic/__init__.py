"""The synthetic county: realistic source systems with ground truth and labelled defects."""

from __future__ import annotations

import csv
import gc
import json
import multiprocessing as mp
import operator
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import yaml

from synthetic.events import WriterContext
from synthetic.his import SYSTEMS, HisCounts, Truth, generate_institution, plan_institutions
from synthetic.population import generate_population, write_population_table
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


TRUTH_FILES = {
    "source_records": ["org_code", "source_system", "entity", "source_table", "local_key", "person_id"],
    "defects": ["org_code", "source_kind", "source_table", "local_key", "defect_type", "field", "expected_rule"],
    "identity_noise": ["org_code", "source_table", "local_key", "person_id", "noise_type", "field"],
}
PARALLEL_FROM_PERSONS = 100_000
STAY_WORK = 5.0  # an inpatient stay costs about as much generation work as this many outpatient visits
_JOB: _Job | None = None  # the job forked workers inherit


@dataclass(frozen=True)
class _Job:
    """Everything needed to generate one institution of a county (shared with forked workers)."""

    config: Any
    plans: list[Any]
    out_dir: Path
    profiles: dict[str, Any]
    start: date
    end: date
    seed: int
    his_url_template: str | None
    kinds: tuple[str, ...] | None

    def run(self, index: int) -> tuple[str, HisCounts, dict[str, dict[str, int]]]:
        """Generate institution `index`, writing its truth to `truth/parts/<index>.<name>.csv`."""
        from synthetic.writers import TableWriter

        plan = self.plans[index]
        if self.his_url_template:
            target = self.his_url_template.format(org_code=plan.org_code, short=plan.short.lower())
        else:
            target = f"sqlite:///{self.out_dir / 'sources' / plan.org_code / 'his.sqlite'}"
        parts = self.out_dir / "truth" / "parts"
        parts.mkdir(parents=True, exist_ok=True)
        handles = {name: (parts / f"{index:04d}.{name}.csv").open("w", encoding="utf-8", newline="")
                   for name in TRUTH_FILES}  # fmt: skip
        try:
            writers = {name: csv.writer(handle) for name, handle in handles.items()}
            truth = Truth(records=writers["source_records"].writerows, defects=writers["defects"].writerows,
                          noise=writers["identity_noise"].writerows)  # fmt: skip
            listeners = listeners_for(self.config, plan, index, self.out_dir, truth, self.seed, self.start, self.end,
                                      self.profiles, self.kinds)  # fmt: skip
            counts = generate_institution(plan, TableWriter(target), truth, self.profiles["care"], self.start,
                                          self.end, self.seed * 1009 + index, listeners)  # fmt: skip
            return plan.org_code, counts, {writer.kind: writer.finish() for writer in listeners}
        finally:
            for handle in handles.values():
                handle.close()


def _generate_one(index: int) -> tuple[str, HisCounts, dict[str, dict[str, int]]]:
    assert _JOB is not None
    return _JOB.run(index)


def _progress(results: Any, plans: list[Any], progress: Callable[[str], None] | None) -> Any:
    for done, result in enumerate(results, start=1):
        if progress:
            progress(f"institution {result[0]} done ({done}/{len(plans)})")
        yield result


def _workload(plan: Any) -> float:
    """A rough size of an institution's generation work: its visits, a stay counting as several (orders over
    days, lab panels, imaging, EMR documents)."""
    return plan.outpatient_expected + STAY_WORK * plan.inpatient_expected


def _join_truth(truth_dir: Path, institutions: int) -> None:
    """Concatenate the per-institution truth parts, in institution order, under one header each."""
    parts = truth_dir / "parts"
    for name, header in TRUTH_FILES.items():
        with (truth_dir / f"{name}.csv").open("w", encoding="utf-8", newline="") as out:
            csv.writer(out).writerow(header)
            for index in range(institutions):
                part = parts / f"{index:04d}.{name}.csv"
                with part.open(encoding="utf-8", newline="") as handle:
                    shutil.copyfileobj(handle, out, 1 << 20)
                part.unlink()
    parts.rmdir()


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
    workers: int | None = None,
) -> GenerationSummary:
    """Generate the county's residents and every institution's HIS in its vendor schema, plus ground truth.

    HIS go to `{out_dir}/sources/{org_code}/his.sqlite`, or to `his_url_template` formatted with the
    institution's `org_code`/`short` (e.g. "mysql+pymysql://root@127.0.0.1:3306/his_{short}").
    Other source kinds an institution has in the config (lis, pacs, emr, public_health; all unless `kinds`
    narrows them) are written below `{out_dir}/sources/{org_code}/{kind}/` from the same encounters.
    Truth goes to `{out_dir}/truth/`: persons.csv, source_records.csv, defects.csv, identity_noise.csv.
    Institutions are generated by `workers` processes (default: 2 from 100 k residents, else 1); the output is
    the same for any number.
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
    profiles = load_profiles()
    same_name = float(profiles["identity_noise"]["same_name_neighbour"])
    people = generate_population(config.county, int(spec["persons"]), seed, end, same_name)
    summary.persons = len(people)
    with (truth_dir / "persons.csv").open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PERSON_FIELDS)
        writer.writerows(map(operator.attrgetter(*PERSON_FIELDS), people))
    # the statistics bureau's 常住人口 table (config county.population_file points here for the synthetic county)
    write_population_table(people, end, out_dir / "sources" / "statistics" / "population.csv")
    plans = plan_institutions(config, people, int(spec["days"]), profiles, end)
    if not plans:
        raise ValueError("the synthetic county derives every visit from an institution's HIS, but no institution in "
                         f"{getattr(config, 'path', 'the config')} has a `his` source")  # fmt: skip
    job = _Job(config, plans, out_dir, profiles, start, end, seed, his_url_template, kinds)
    if workers is None:  # forking pays off only for large counties
        workers = min(2, os.cpu_count() or 1) if len(people) >= PARALLEL_FROM_PERSONS else 1
    workers = max(1, min(workers, len(plans)))
    if workers > 1 and "fork" in mp.get_all_start_methods():
        # Institutions are independent: generate them in forked workers that inherit the population, each
        # writing its own truth part; parts are joined in institution order, so output never depends on workers.
        # The largest institutions go first, so the tail is a small one whichever worker is free.
        global _JOB
        _JOB = job
        gc.freeze()  # keep the inherited population out of the workers' garbage collections
        largest_first = sorted(range(len(plans)), key=lambda i: (-_workload(plans[i]), i))
        try:
            with mp.get_context("fork").Pool(workers) as pool:
                done = {r[0]: r for r in _progress(pool.imap_unordered(_generate_one, largest_first), plans, progress)}
        finally:
            _JOB = None
            gc.unfreeze()
        results = [done[plan.org_code] for plan in plans]
    else:
        results = list(_progress((job.run(i) for i in range(len(plans))), plans, progress))
    for org_code, his_counts, other_counts in results:
        summary.his[org_code] = his_counts
        summary.other[org_code] = other_counts
    _join_truth(truth_dir, len(plans))
    state = {
        "size": size, "seed": seed, "start": start.isoformat(), "end": end.isoformat(), "last_day": end.isoformat(),
        "his_url_template": his_url_template, "kinds": list(kinds) if kinds else None,
        "next_seq": {org: counts.next_seq for org, counts in summary.his.items()},
    }  # fmt: skip
    (truth_dir / "generation.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    return summary


from synthetic.daily import IncrementSummary, increment  # noqa: E402  (daily uses the helpers above)

__all__ = ["GenerationSummary", "IncrementSummary", "generate", "increment", "listeners_for"]
