"""An MPI run: collect identities from raw, match the new and changed ones against the index, persist.

Incremental: pairs are only scored when one side is new or changed; existing cross-references keep their EMPI
id (joining two existing EMPI ids is left to a data steward as a review candidate). Re-running on the same
input finds nothing new and writes nothing.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from mpi import identities as ids
from mpi.golden import PERSON_FIELDS, golden_records
from mpi.lookup import ensure_lookup_indexes
from mpi.match import cluster, load_settings, score_pairs
from mpi.store import candidate_id, empi_for_key, new_event_id, now, replace_rows
from warehouse import Warehouse, ensure_core

KEY = ["org_code", "source_system", "local_id"]
log = logging.getLogger(__name__)


@dataclass
class StageTimer:
    """Wall seconds and peak RSS (MB) after each stage of a run, logged at INFO (`bench/bench_mpi.py` prints them)."""

    stages: dict[str, tuple[float, int]] = field(default_factory=dict)
    _t: float = field(default_factory=time.perf_counter)

    def __call__(self, stage: str) -> None:
        now_t = time.perf_counter()
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self.stages[stage] = (round(now_t - self._t, 2), int(rss))
        log.info("mpi stage %s: %.2f s, peak RSS %d MB", stage, now_t - self._t, rss)
        self._t = now_t


@dataclass(frozen=True)
class LinkResult:
    identities: int
    new: int
    changed: int
    new_persons: int
    linked_pairs: int
    candidates: int
    persons: int
    stages: dict[str, tuple[float, int]] = field(default_factory=dict, compare=False)


def run_mpi(wh: Warehouse, townships: list[dict[str, str]], settings: dict[str, Any] | None = None) -> LinkResult:
    """Match every new or changed identity in raw against the index and persist person/xref/candidate/event."""
    settings = settings or load_settings()
    timer = StageTimer()
    ensure_core(wh)
    ensure_lookup_indexes(wh)
    current = _current_identities(wh, townships, timer)
    if isinstance(current, int):  # nothing new, changed or unlinked in raw: nothing to do
        return LinkResult(current, 0, 0, 0, 0, 0, wh.count("mpi.person", "status = 'active'"), timer.stages)
    xref = wh.query_df("SELECT org_code, source_system, local_id, empi_id FROM mpi.xref")
    # joins and sorts copy every column: skipped when there is nothing to join or the rows are already in order
    if xref.height == 0:
        frame = current.with_columns(pl.lit(None, pl.String).alias("empi_id"))
    else:
        frame = current.join(xref, on=KEY, how="left", maintain_order="left")
    del current, xref
    frame = frame.with_columns(pl.col("empi_id").is_null().alias("is_unlinked"), pl.col("is_new").fill_null(True))
    if not _is_sorted(frame, KEY):
        frame = frame.sort(KEY)
    frame = frame.with_row_index("rid").with_columns(pl.col("rid").cast(pl.Int64))
    timer("join_index")
    n_new = int(frame["is_unlinked"].sum())
    n_changed = int((frame["is_new"] & ~frame["is_unlinked"]).sum())
    if n_new == 0 and n_changed == 0:
        persons = wh.count("mpi.person", "status = 'active'")
        return LinkResult(frame.height, 0, 0, 0, 0, 0, persons, timer.stages)

    pairs = score_pairs(frame, settings)
    timer("block_score")
    existing = frame.filter(pl.col("empi_id").is_not_null()).group_by("empi_id").agg(pl.col("rid").sort())
    # valid 身份证号 only of the identities clustering can touch (in a pair or an existing person)
    involved = pl.concat([pairs["rid_l"], pairs["rid_r"], existing["rid"].explode()]).unique()
    valid_rows = frame.select("rid", "id_no", "id_valid").filter(
        pl.col("id_valid") & pl.col("rid").is_in(involved.implode())
    )
    valid = dict(zip(valid_rows["rid"].to_list(), valid_rows["id_no"].to_list(), strict=True))
    result = cluster(frame.height, pairs, valid, existing["rid"].to_list(), settings)
    del pairs, existing, valid, valid_rows, involved
    timer("cluster")

    at = now()
    frame = frame.with_columns(pl.Series("root", result.root, dtype=pl.Int64))
    # EMPI of a component: its existing id, else one derived from its first new identity (by key order).
    roots = (
        frame.select("root", "empi_id", *KEY)  # rows are in rid order
        .group_by("root", maintain_order=True)
        .agg(
            pl.col("empi_id").drop_nulls().first().alias("old"), pl.col("org_code", "source_system", "local_id").first()
        )
    )
    founders = roots.filter(pl.col("old").is_null())
    derived = [empi_for_key(*k) for k in zip(*(founders[c].to_list() for c in KEY), strict=True)]
    roots = roots.with_columns(
        pl.col("old")
        .fill_null(pl.col("root").replace_strict(founders["root"], pl.Series(derived, dtype=pl.String), default=None))
        .alias("assigned")
    )
    del founders, derived
    # two new columns by lookup (a join would copy every column of the frame)
    frame = frame.with_columns(
        pl.col("root").replace_strict(roots["root"], roots["assigned"]).alias("assigned"),
        pl.col("root").replace_strict(roots["root"], roots["old"].is_null()).alias("founded"),
    )
    del roots
    methods = pl.DataFrame(
        {
            "rid": list(result.link_method),
            "link_method": [m for m, _ in result.link_method.values()],
            "link_score": [s for _, s in result.link_method.values()],
        },
        schema={"rid": pl.Int64, "link_method": pl.String, "link_score": pl.Float64},
    )
    new_rows = (
        frame.select("rid", *KEY, "assigned", "founded", "is_unlinked")
        .filter("is_unlinked")
        .join(methods, on="rid", how="left")
    )
    new_xref = new_rows.select(
        *KEY,
        pl.col("assigned").alias("empi_id"),
        pl.col("link_method").fill_null("new"),
        pl.col("link_score"),
        pl.lit(at).alias("linked_at"),
    )
    new_persons = new_rows.filter("founded").select("assigned").unique()

    # review candidates between different EMPI ids (never between ids a steward already decided on)
    review = pl.DataFrame(result.review, schema={"rid_l": pl.Int64, "rid_r": pl.Int64, "w": pl.Float64}, orient="row")
    assigned = frame.select("rid", "assigned")
    review = (
        review.join(assigned.rename({"rid": "rid_l", "assigned": "a"}), on="rid_l")
        .join(assigned.rename({"rid": "rid_r", "assigned": "b"}), on="rid_r")
        .filter(pl.col("a") != pl.col("b"))
        .select(pl.min_horizontal("a", "b").alias("a"), pl.max_horizontal("a", "b").alias("b"), "w")
        .group_by("a", "b")
        .agg(pl.col("w").max())
    )
    best = {(a, b): w for a, b, w in review.iter_rows()}
    known = {r[0] for r in wh.query("SELECT candidate_id FROM mpi.candidate")}
    cands = [
        (candidate_id(a, b), a, b, round(w, 6), "open", at, None, None, None)
        for (a, b), w in sorted(best.items())
        if candidate_id(a, b) not in known
    ]

    timer("assign")
    affected = frame.filter("is_new").select(pl.col("assigned").alias("empi_id")).unique()
    golden_input = ["org_code", "source_system", "local_id", "updated_at", "id_valid", *PERSON_FIELDS]
    members = frame.select(pl.col("assigned").alias("empi_id"), *golden_input)
    if not frame["is_new"].all():  # (a first run: every person is affected)
        members = members.join(affected, on="empi_id")
    persons = golden_records(members, at)
    del members
    timer("golden")
    created = wh.query_df("SELECT empi_id, created_at AS old_created FROM mpi.person")
    if created.height:
        persons = (
            persons.join(created, on="empi_id", how="left")
            .with_columns(pl.coalesce("old_created", "created_at").alias("created_at"))
            .drop("old_created")
        )
    identity_rows = frame.select(*ids.IDENTITY_COLUMNS, "is_new")
    if not identity_rows["is_new"].all():
        identity_rows = identity_rows.filter("is_new")
    identity_rows = identity_rows.drop("is_new").with_columns(pl.lit(at).alias("matched_at"))
    n_identities = frame.height
    del frame
    events = pl.concat(
        [
            new_persons.select(
                pl.col("assigned").alias("empi_id"),
                pl.lit("create").alias("event_type"),
                pl.lit("new person").alias("reason"),
                *[pl.lit(None, pl.String).alias(c) for c in KEY],
            ),
            new_rows.select(
                pl.col("assigned").alias("empi_id"),
                pl.lit("link").alias("event_type"),
                pl.col("link_method").fill_null("new").alias("reason"),
                *KEY,
            ),
        ]
    )
    events = events.with_columns(
        (pl.lit(new_event_id()[:16] + "-") + pl.int_range(pl.len()).cast(pl.String).str.zfill(9)).alias("event_id"),
        pl.lit(None, pl.String).alias("other_empi_id"),
        pl.lit("mpi").alias("actor"),
        pl.lit(at).alias("at"),
        pl.lit(None, pl.String).alias("detail"),
    )
    del new_rows
    timer("prepare")
    with wh.transaction():
        replace_rows(wh, "mpi.identity", identity_rows, KEY)
        del identity_rows  # each frame is dropped once written (bounded peak memory)
        timer("write_identity")
        wh.load("mpi.xref", new_xref)
        del new_xref
        replace_rows(wh, "mpi.person", persons, ["empi_id"])
        del persons
        wh.executemany(
            "INSERT INTO mpi.candidate (candidate_id, left_empi_id, right_empi_id, score, status, created_at, "
            "decided_by, decided_at, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            cands,
        )
        timer("write_xref_person")
        wh.load("mpi.event", events)
        del events
        timer("write_event")
        write_link_stats(wh, at)
        timer("link_stats")
    timer("commit")
    return LinkResult(
        identities=n_identities,
        new=n_new,
        changed=n_changed,
        new_persons=new_persons.height,
        linked_pairs=len(result.link_method),
        candidates=len(cands),
        persons=wh.count("mpi.person", "status = 'active'"),
        stages=timer.stages,
    )


def _current_identities(wh: Warehouse, townships: list[dict[str, str]], timer: StageTimer) -> pl.DataFrame | int:
    """Every current identity, normalized; only new or changed raw identities are normalized again (`is_new`).

    Just their number when none is new or changed and every one has a cross-reference (a re-run)."""
    raw = ids.read_raw_identities(wh)
    timer("read_raw")
    stored = wh.query_df("SELECT org_code, source_system, local_id, content_hash AS stored_hash FROM mpi.identity")
    if stored.height == 0:  # a first run: everything is new (no join, no filter copying the raw identities)
        fresh = ids.normalize_identities(raw, townships).with_columns(pl.lit(True).alias("is_new"))
        timer("normalize")
        return fresh
    raw = raw.join(stored, on=KEY, how="left", maintain_order="left").with_columns(
        (pl.col("stored_hash").is_null() | (pl.col("stored_hash") != pl.col("raw_hash"))).alias("is_new")
    )
    if not raw["is_new"].any():
        linked = wh.query_df("SELECT org_code, source_system, local_id FROM mpi.xref")
        if raw.select(KEY).join(linked, on=KEY, how="anti").height == 0:
            timer("compare")
            return raw.height
    fresh = ids.normalize_identities(raw.filter("is_new"), townships).with_columns(pl.lit(True).alias("is_new"))
    timer("normalize")
    unchanged = raw.filter(~pl.col("is_new")).select(KEY)
    if unchanged.height == 0:
        return fresh
    cols = ", ".join(ids.IDENTITY_COLUMNS)
    old = wh.query_df(f"SELECT {cols} FROM mpi.identity").join(unchanged, on=KEY, how="semi")
    old = old.select([pl.col(c).cast(t) for c, t in ids.IDENTITY_SCHEMA.items()]).with_columns(
        pl.lit(False).alias("is_new")
    )
    return pl.concat([fresh, old])


def _is_sorted(frame: pl.DataFrame, key: list[str]) -> bool:
    """Whether the rows are in ascending order of `key` (no nulls in it), as `frame.sort(key)` would put them."""
    if frame.height < 2:
        return True
    before, same = pl.lit(False), pl.lit(True)
    for k in key:
        a, b = pl.col(k), pl.col(k).shift(-1)
        before, same = before | (same & (a < b)), same & (a == b)
    ordered = (before | same).fill_null(False).slice(0, frame.height - 1)
    return bool(frame.select(ordered.all()).item())


def write_link_stats(wh: Warehouse, at: Any) -> None:
    """Rewrite mpi.link_stats: identities, linked, link rate and open review candidates per org × system."""
    wh.execute("DELETE FROM mpi.link_stats")
    wh.execute(
        """
        INSERT INTO mpi.link_stats (org_code, source_system, identities, linked, link_rate, open_candidates,
                                    computed_at)
        WITH x AS (
            SELECT org_code, source_system, empi_id, link_method,
                   count(*) OVER (PARTITION BY empi_id) AS members
            FROM mpi.xref
        ), side AS (  -- each open candidate by both its EMPI ids (two equi-joins, not one OR-join)
            SELECT candidate_id, left_empi_id AS empi_id FROM mpi.candidate WHERE status = 'open'
            UNION ALL
            SELECT candidate_id, right_empi_id FROM mpi.candidate WHERE status = 'open'
        ), oc AS (
            SELECT x.org_code, x.source_system, count(DISTINCT c.candidate_id) AS open_candidates
            FROM side AS c
            JOIN mpi.xref AS x ON x.empi_id = c.empi_id
            GROUP BY x.org_code, x.source_system
        )
        SELECT x.org_code, x.source_system, count(*),
               sum(CASE WHEN x.members > 1 OR x.link_method = 'exact_id' THEN 1 ELSE 0 END),
               CAST(sum(CASE WHEN x.members > 1 OR x.link_method = 'exact_id' THEN 1 ELSE 0 END) AS DOUBLE PRECISION)
                   / count(*),
               coalesce(max(oc.open_candidates), 0), ?
        FROM x LEFT JOIN oc ON oc.org_code = x.org_code AND oc.source_system = x.source_system
        GROUP BY x.org_code, x.source_system
        """,
        [at],
    )


def mpi_link(config: Any, progress: Any = None) -> LinkResult:
    """Stage function: run the MPI on the configured warehouse (after ingest, before dbt transform)."""
    from hutong.stages import warehouse

    townships = list((config.county or {}).get("townships", []))
    with warehouse(config) as wh:
        result = run_mpi(wh, townships)
    if progress:
        progress(
            f"{result.identities:,} identities, {result.new:,} new, {result.changed:,} changed → "
            f"{result.new_persons:,} new persons, {result.candidates:,} review candidates, {result.persons:,} persons"
        )
    return result
