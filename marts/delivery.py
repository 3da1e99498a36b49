"""The delivery engine: for one feed, target and institution, select the records new since the watermark, hold
back those failing the quality gate (listed with the reason), build and package the rest, record each package in
the ledger before sending it, then send everything unsent in order with retries and receipts.

Nothing is lost: a package is in `feeds.delivery` before it leaves, and stays `pending`/`failed` until a receiver
acknowledges it. Nothing is duplicated: a record whose content hash matches what was last packaged for the target
is not packaged again, a package keeps its id (= Idempotency-Key) across re-sends, and delivery stops at the first
failure so later versions of a record never overtake earlier ones.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from marts import ledger
from marts.feed_config import Feed, Target, actor, for_org
from marts.formats import BuildError, Format, Record, build_each, make_format
from marts.masking import apply_policy
from marts.transport import Outcome, send
from warehouse import Warehouse, ensure_core

PAGE_SIZE = 1000
MAX_DELETE_FRACTION = 0.5


@dataclass
class FeedRun:
    """What one run did for one feed × target × institution."""

    feed: str
    target: str
    org_code: str
    period: str
    gate_run_id: str | None = None
    candidates: int = 0
    sent: int = 0  # records packaged in this run (new or changed, plus deletions)
    unchanged: int = 0
    excluded: int = 0
    deleted: int = 0
    packaged: list[str] = field(default_factory=list)
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    files: list[str] = field(default_factory=list)

    @property
    def record_count(self) -> int:
        return self.sent


def mask_salt() -> str:
    """Salt for pseudonyms (set HUTONG_MASK_SALT in production)."""
    return os.environ.get("HUTONG_MASK_SALT", "hutong")


def latest_gate_run(wh: Warehouse, org: str | None = None, datasets: list[str] | None = None) -> str | None:
    """The most recent quality run that evaluated the gate's data sets for the institution (other runs, e.g. raw
    checks of another day, do not say anything about these records)."""
    where, params = [], []
    if org:
        where.append("org_code = ?")
        params.append(org)
    if datasets:
        where.append(f"dataset IN ({', '.join('?' for _ in datasets)})")
        params.extend(datasets)
    clause = f"WHERE {' AND '.join(where)} " if where else ""
    return wh.scalar(
        f"SELECT run_id FROM quality.check_result {clause}ORDER BY checked_at DESC, run_id DESC LIMIT 1", params
    )


def fingerprint(feed: Feed) -> str:
    """What shapes a feed's payload; a change re-sends records (their content changed)."""
    spec = [
        feed.format,
        [c.__dict__ for c in feed.columns],
        [[c.name, c.from_sql, [x.__dict__ for x in c.columns]] for c in feed.components],
        feed.identifiers,
        feed.options,
    ]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _body(record: Record) -> str:
    """The record's content as canonical JSON (hashed for change detection; CDA derives document ids from it)."""
    return json.dumps([record.row, record.components], sort_keys=True, default=str, ensure_ascii=False)


def _column_sql(feed: Feed, columns: Any, salt: str) -> str:
    parts = []
    for c in columns:
        expr = apply_policy(c.sql, c.pii, feed.policy(c.pii), salt) if c.pii else c.sql
        parts.append(f"{expr} AS {c.name}")
    return ", ".join(parts)


def relinked_tables(wh: Warehouse) -> set[str]:
    """Tables whose rows a dbt post-hook re-pointed at another EMPI id (ops.empi_change, written by the dbt macro
    `repoint_empi`). A feed covers such a change like an ingest batch, and the records showing a person it
    re-pointed are candidates again: their rows keep their raw batch, so batches alone would never re-send them."""
    if not wh.table_exists("ops.empi_change"):
        return set()
    return {str(name) for (name,) in wh.query("SELECT DISTINCT model_name FROM ops.empi_change")}


class _Run:
    """State of one run (temp tables feed_cand / feed_excl live on the warehouse connection)."""

    def __init__(self, wh: Warehouse, feed: Feed, target: Target, org: str, period: str, data_dir: Path) -> None:
        self.wh, self.feed, self.target, self.org, self.period = wh, for_org(feed, org), target, org, period
        self.fmt: Format = make_format(feed)
        self.spool = data_dir / "feeds" / "spool" / feed.name / target.name / org
        self.result = FeedRun(feed.name, target.name, org, period)
        self.base = fingerprint(feed)
        self.failures: list[tuple[str, str, str, str | None]] = []  # key, code, reason, origin
        self.new_batches = 0  # ingest batches (per watermark table) this run examines for the first time
        self.staged = ["feed_seen", "feed_rows", *(f"feed_comp{i}" for i in range(len(feed.components)))]

    # -- selection ------------------------------------------------------------------------------
    def select(self) -> None:
        """Candidates: records with a row in an ingest batch not yet covered for that watermark table, or showing a
        person whose EMPI id a dbt run re-pointed in that table since (ops.empi_change), plus records still held
        back by the gate. The new batches and changes are kept (feed_batches) and recorded as covered at close, so
        each is examined exactly once — whenever its rows become visible, with no time lag."""
        feed, src, wh = self.feed, self.feed.source, self.wh
        for name in ("feed_cand", "feed_excl", "feed_batches"):
            wh.execute(f"DROP TABLE IF EXISTS {name}")
        scope = [feed.name, self.target.name, self.org]
        batches = " UNION ALL ".join(f"SELECT DISTINCT '{label}' AS src, _batch_id AS bid FROM {t}"
                                     for label, t, _, _ in src.watermark)  # fmt: skip
        changed_tables = relinked_tables(wh)
        relinked = [w for w in src.watermark if w[1] in changed_tables]
        uncovered = ("NOT EXISTS (SELECT 1 FROM feeds.covered_batch c WHERE c.feed = ? AND c.target = ? "
                     "AND c.org_code = ? AND c.source = x.src AND c.batch_id = x.bid)")  # fmt: skip
        changes = "".join(
            f""" UNION ALL SELECT x.src, x.bid, max(x.changed_at) FROM (SELECT '{label}' AS src, change_id AS bid,
                changed_at FROM ops.empi_change WHERE model_name = '{t}' AND org_code = ?) x WHERE {uncovered}
                GROUP BY x.src, x.bid"""
            for label, t, _, _ in relinked
        )
        wh.execute(
            f"""CREATE TEMP TABLE feed_batches AS
            SELECT x.src, x.bid, max(b.finished_at) AS finished_at
            FROM ({batches}) x JOIN ops.ingest_batch b ON b.batch_id = x.bid
            WHERE b.org_code = ? AND b.finished_at IS NOT NULL AND {uncovered}
            GROUP BY x.src, x.bid{changes}""",
            [self.org, *scope] * (1 + len(relinked)),
        )
        self.new_batches = int(wh.scalar("SELECT count(*) FROM feed_batches") or 0)
        if relinked:  # only tables with a change new to this feed are searched for the persons it re-pointed
            sql = "SELECT DISTINCT src FROM feed_batches WHERE bid IN (SELECT change_id FROM ops.empi_change)"
            fresh = {str(label) for (label,) in wh.query(sql)}
            relinked = [w for w in relinked if w[0] in fresh]
        keys = " UNION ALL ".join(
            [f"SELECT '{label}' AS src, {k} AS k FROM {t} "
             f"WHERE _batch_id IN (SELECT bid FROM feed_batches WHERE src = '{label}')"
             for label, t, k, _ in src.watermark]
            + [f"SELECT '{label}' AS src, {k} AS k FROM {t} WHERE empi_id IN (SELECT empi_id FROM ops.empi_change "
               f"WHERE model_name = '{t}' AND org_code = ? "
               f"AND change_id IN (SELECT bid FROM feed_batches WHERE src = '{label}'))"
               for label, t, k, _ in relinked]
        )  # fmt: skip
        by_match: dict[str, list[str]] = {}
        for label, _, _, match in src.watermark:
            by_match.setdefault(match, []).append(f"'{label}'")
        new = " OR ".join(f"{m} IN (SELECT k FROM fresh WHERE src IN ({', '.join(ls)}))" for m, ls in by_match.items())
        gates = "".join(f", {expr} AS g{i}" for i, expr in enumerate(feed.gate_datasets.values()))
        wh.execute(
            f"""CREATE TEMP TABLE feed_cand AS
            WITH fresh AS (
                SELECT DISTINCT src, k FROM ({keys}) x
            ), reopened AS (
                SELECT DISTINCT record_key AS k FROM feeds.exclusion
                WHERE feed = ? AND target = ? AND org_code = ? AND resolved_at IS NULL
            )
            SELECT {src.key} AS record_key{gates}, {src.origin} AS _origin, {src.batch} AS _batch_id,
                   false AS excluded
            FROM {src.from_sql}
            WHERE {src.org} = ? AND ({src.where or "1 = 1"})
              AND ({new} OR {src.key} IN (SELECT k FROM reopened))""",
            [*([self.org] * len(relinked)), *scope, self.org],  # the fresh keys' changes first, then reopened
        )
        total, distinct = wh.query("SELECT count(*), count(DISTINCT record_key) FROM feed_cand")[0]
        if total != distinct:
            raise RuntimeError(
                f"feed {feed.name}: source yields {total - distinct} duplicate record keys; fix its FROM"
            )
        self.result.candidates = int(total)

    def gate(self) -> None:
        wh, feed = self.wh, self.feed
        wh.execute("CREATE TEMP TABLE feed_excl (record_key VARCHAR, reason_code VARCHAR, reason VARCHAR)")
        if not feed.gate_datasets or not self.result.candidates:  # nothing new: nothing to gate
            return
        run_id = latest_gate_run(wh, self.org, list(feed.gate_datasets)) or latest_gate_run(wh)
        if run_id is None:
            raise RuntimeError(f"feed {feed.name}: no quality run yet; run `hutong quality` first (quality gate)")
        self.result.gate_run_id = run_id
        severities = ", ".join(f"'{s}'" for s in feed.gate_severities)
        parts = [
            f"""SELECT c.record_key, q.rule_id AS reason_code,
                   max(q.rule_id || ': ' || coalesce(q.detail, '')) AS reason
            FROM feed_cand c JOIN quality.problem_record q ON q.record_key = c.g{i} AND q.dataset = '{dataset}'
            JOIN quality.check_result r ON r.run_id = q.run_id AND r.rule_id = q.rule_id AND r.org_code = q.org_code
            WHERE q.run_id = ? AND q.org_code = ? AND r.severity IN ({severities})
            GROUP BY c.record_key, q.rule_id"""
            for i, dataset in enumerate(feed.gate_datasets)
        ]
        wh.execute(
            "INSERT INTO feed_excl SELECT record_key, reason_code, max(reason) FROM ("
            + " UNION ALL ".join(parts)
            + ") x GROUP BY record_key, reason_code",
            [run_id, self.org] * len(parts),  # raw data sets key by source key: unique per institution only
        )
        wh.execute("UPDATE feed_cand SET excluded = true WHERE record_key IN (SELECT record_key FROM feed_excl)")

    # -- build and package ----------------------------------------------------------------------
    def stage(self, salt: str) -> None:
        """Set-based staging, once per run: the records to build (with their identifiers masked per the contract
        and the content hash last packaged for the target), and each component's rows, as temp tables ordered by
        record key — one query each over the source instead of one per page."""
        feed, src, wh, dialect = self.feed, self.feed.source, self.wh, self.wh.dialect
        for name in self.staged:
            wh.execute(f"DROP TABLE IF EXISTS {name}")
        wh.execute(
            """CREATE TEMP TABLE feed_seen AS
            SELECT record_key, content_hash, op FROM (
                SELECT i.record_key, i.content_hash, i.op, row_number() OVER (
                    PARTITION BY i.record_key ORDER BY i.created_at DESC, i.delivery_id DESC) AS _n
                FROM feeds.delivery_item i
                WHERE i.feed = ? AND i.target = ? AND i.org_code = ?
                  AND i.record_key IN (SELECT record_key FROM feed_cand WHERE NOT excluded)) x
            WHERE _n = 1""",
            [feed.name, self.target.name, self.org],
        )
        wh.execute(
            "CREATE TEMP TABLE feed_rows AS "
            "SELECT c.record_key AS _rk, c._origin AS _ro, c._batch_id AS _rb, "
            "_seen.content_hash AS _sh, _seen.op AS _so, "
            f"{_column_sql(feed, feed.columns, salt)} "
            f"FROM {src.from_sql} JOIN feed_cand c ON c.record_key = {src.key} "
            "LEFT JOIN feed_seen _seen ON _seen.record_key = c.record_key "
            # the record key is unique within an institution (a person's EMPI id is not unique across them)
            f"WHERE NOT c.excluded AND {src.org} = ? AND ({src.where or '1 = 1'}) ORDER BY c.record_key",
            [self.org],
        )
        if dialect == "postgres":
            wh.execute("CREATE INDEX ON feed_rows (_rk)")
            wh.execute("ANALYZE feed_rows")
        for i, comp in enumerate(feed.components):
            # every column breaks ties: rows in the same order each run, so an unchanged record hashes the same
            order = "".join(f", {x}" for x in (comp.order, *(c.sql for c in comp.columns)) if x)
            wh.execute(
                f"CREATE TEMP TABLE feed_comp{i} AS "
                f"SELECT {comp.parent} AS _parent, row_number() OVER (ORDER BY {comp.parent}{order}) AS _seq, "
                f"{_column_sql(feed, comp.columns, salt)} FROM {comp.from_sql} "
                f"JOIN feed_cand c ON c.record_key = {comp.parent} WHERE NOT c.excluded ORDER BY _seq"
            )
            if dialect == "postgres":
                wh.execute(f"CREATE INDEX ON feed_comp{i} (_parent, _seq)")
                wh.execute(f"ANALYZE feed_comp{i}")

    def pages(self) -> Any:
        """Pages of staged records (by record key) with their components."""
        # columns by name and the feed in the text: PostgreSQL (psycopg) prepares repeated statements, and the temp
        # tables of another feed with the same names have other columns ("cached plan must not change result type")
        tag = f"/* feed {self.feed.name} */"
        row_cols = ", ".join(["_rk", "_ro", "_rb", "_sh", "_so", *(c.name for c in self.feed.columns)])
        comp_cols = [", ".join(["_parent", "_seq", *(c.name for c in comp.columns)]) for comp in self.feed.components]
        last = ""
        while True:
            rows = self.wh.query_dicts(
                f"SELECT {row_cols} FROM feed_rows WHERE _rk > ? ORDER BY _rk LIMIT {PAGE_SIZE} {tag}", [last]
            )
            if not rows:
                return
            low, last = rows[0]["_rk"], rows[-1]["_rk"]
            components: dict[str, dict[str, list[dict[str, Any]]]] = {}
            for i, comp in enumerate(self.feed.components):
                by_parent: dict[str, list[dict[str, Any]]] = {}
                for r in self.wh.query_dicts(
                    f"SELECT {comp_cols[i]} FROM feed_comp{i} WHERE _parent >= ? AND _parent <= ? "
                    f"ORDER BY _parent, _seq {tag}",
                    [low, last],
                ):
                    del r["_seq"]
                    by_parent.setdefault(r.pop("_parent"), []).append(r)
                components[comp.name] = by_parent
            yield rows, components

    def package(self, salt: str) -> None:
        pending: list[tuple[Any, ledger.Item]] = []
        if self.result.candidates:
            self.stage(salt)
        for rows, components in self.pages() if self.result.candidates else ():
            todo: list[tuple[Record, str]] = []
            for row in rows:
                key, origin, batch = row.pop("_rk"), row.pop("_ro"), row.pop("_rb")
                seen_hash, seen_op = row.pop("_sh"), row.pop("_so")
                comps = {name: by_parent.get(key, []) for name, by_parent in components.items()}
                record = Record(key, self.org, row, comps, origin, batch)
                record.body = _body(record)
                digest = hashlib.sha256((self.base + record.body).encode()).hexdigest()
                if seen_hash == digest:
                    self.result.unchanged += 1
                    continue
                record.op = "U" if seen_hash is not None and seen_op != "D" else "I"
                todo.append((record, digest))
            for (record, digest), item in zip(todo, build_each(self.fmt, [r for r, _ in todo]), strict=True):
                if isinstance(item, BuildError):
                    self.failures.append((record.key, item.code, item.reason, record.origin))
                    continue
                pending.append((item, ledger.Item(record.key, digest, record.op, record.origin, record.batch_id)))
                if self.feed.max_records and len(pending) >= self.feed.max_records:
                    self.flush(pending)
                    pending = []
        self.deletions(pending)
        if pending:
            self.flush(pending)

    def deletions(self, pending: list[tuple[Any, ledger.Item]]) -> None:
        """Records fed before that are gone from the source (cancelled, soft-deleted) are sent as op D."""
        if not getattr(self.fmt, "supports_delete", False):
            return
        src, f, t, o = self.feed.source, self.feed.name, self.target.name, self.org
        gone = self.wh.query(
            f"""SELECT i.record_key, i._origin FROM feeds.delivery_item i
            WHERE i.feed = ? AND i.target = ? AND i.org_code = ? AND i.op <> 'D'
              AND NOT EXISTS (SELECT 1 FROM feeds.delivery_item j WHERE j.feed = i.feed AND j.target = i.target
                    AND j.org_code = i.org_code AND j.record_key = i.record_key
                    AND (j.created_at > i.created_at
                         OR (j.created_at = i.created_at AND j.delivery_id > i.delivery_id)))
              AND NOT EXISTS (SELECT 1 FROM {src.from_sql} WHERE {src.key} = i.record_key AND {src.org} = ?)
            ORDER BY i.record_key""",
            [f, t, o, o],
        )
        if not gone:
            return
        live = self.wh.scalar(
            "SELECT count(DISTINCT record_key) FROM feeds.delivery_item WHERE feed = ? AND target = ? AND org_code = ?",
            [f, t, o],
        )
        if len(gone) > 100 and len(gone) > MAX_DELETE_FRACTION * live:
            raise RuntimeError(
                f"feed {f}: {len(gone)} of {live} fed records vanished from the source for {o}; "
                "refusing to send deletions (check the dbt models) "
            )
        for key, origin in gone:
            record = Record(key, o, {}, {}, origin, None, op="D")
            pending.append((self.fmt.build(record), ledger.Item(key, "deleted", "D", origin, None)))
            self.result.deleted += 1
            if self.feed.max_records and len(pending) >= self.feed.max_records:
                self.flush(pending)
                pending.clear()

    def flush(self, pending: list[tuple[Any, ledger.Item]]) -> None:
        items = [i for _, i in pending]
        payload = self.fmt.package([p for p, _ in pending])
        checksum = hashlib.sha256(payload).hexdigest()
        identity = "|".join(
            [self.feed.name, self.target.name, self.org] + [f"{i.record_key}:{i.content_hash}:{i.op}" for i in items]
        )
        delivery_id = hashlib.sha256(identity.encode()).hexdigest()[:32]
        before = self.wh.scalar(
            "SELECT count(*) FROM feeds.delivery WHERE feed = ? AND target = ? AND org_code = ? AND period = ? "
            "AND delivery_id <> ?",
            [self.feed.name, self.target.name, self.org, self.period, delivery_id],
        )
        name = self.feed.layout.format(
            feed=self.feed.name,
            org=self.org,
            period=self.period,
            delivery_id=delivery_id,
            ext=self.fmt.extension,
            part=f"-{before + 1}" if before else "",
        )
        self.spool.mkdir(parents=True, exist_ok=True)
        spool = self.spool / f"{delivery_id}.{self.fmt.extension}"
        tmp = spool.with_name(spool.name + ".part")
        tmp.write_bytes(payload)
        tmp.replace(spool)
        row = {
            "delivery_id": delivery_id,
            "period": self.period,
            "file_name": name,
            "record_count": len(items),
            "checksum": f"sha256:{checksum}",
            "format": self.feed.format,
            "content_type": self.fmt.content_type,
            "byte_count": len(payload),
            "spool_path": str(spool),
            "gate_run_id": self.result.gate_run_id,
        }
        ledger.record_package(self.wh, row, self.feed.name, self.target.name, self.org, items)
        self.result.packaged.append(delivery_id)
        self.result.sent += len(items)

    # -- bookkeeping ----------------------------------------------------------------------------
    def close(self) -> None:
        """Covered batches and the exclusion list: what the run saw, recorded in one transaction."""
        wh, now = self.wh, ledger.now_local()
        try:
            if self.new_batches or self.result.candidates:
                with wh.transaction():
                    ledger.cover_batches(wh, self.feed.name, self.target.name, self.org, self.period, now)
                    if self.result.candidates:
                        self.record_exclusions(now)
        finally:
            self.drop_temp()

    def record_exclusions(self, now: Any) -> None:
        """List what the gate or a build check held back; resolve what passes now."""
        wh, f, t, o = self.wh, self.feed.name, self.target.name, self.org
        if self.failures:
            wh.load(
                "feed_excl",
                pl.DataFrame(
                    [[k, c, r] for k, c, r, _ in self.failures],
                    schema={"record_key": pl.String, "reason_code": pl.String, "reason": pl.String},
                    orient="row",
                ),
            )
        scope = "e.feed = ? AND e.target = ? AND e.org_code = ?"
        same = "x.record_key = e.record_key AND x.reason_code = e.reason_code"
        wh.execute(
            f"UPDATE feeds.exclusion AS e SET last_seen_at = ?, gate_run_id = ?, resolved_at = NULL, "
            f"reason = (SELECT max(x.reason) FROM feed_excl x WHERE {same}) "
            f"WHERE {scope} AND EXISTS (SELECT 1 FROM feed_excl x WHERE {same})",
            [now, self.result.gate_run_id, f, t, o],
        )
        wh.execute(
            "INSERT INTO feeds.exclusion (feed, target, org_code, record_key, reason_code, reason, gate_run_id, "
            "_origin, first_excluded_at, last_seen_at) "
            "SELECT ?, ?, ?, x.record_key, x.reason_code, max(x.reason), ?, max(c._origin), ?, ? "
            "FROM feed_excl x LEFT JOIN feed_cand c ON c.record_key = x.record_key "
            f"WHERE NOT EXISTS (SELECT 1 FROM feeds.exclusion e WHERE {scope} AND {same}) "
            "GROUP BY x.record_key, x.reason_code",
            [f, t, o, self.result.gate_run_id, now, now, f, t, o],
        )
        wh.execute(
            f"UPDATE feeds.exclusion AS e SET resolved_at = ? WHERE {scope} AND e.resolved_at IS NULL "
            "AND e.record_key IN (SELECT record_key FROM feed_cand) "
            f"AND NOT EXISTS (SELECT 1 FROM feed_excl x WHERE {same})",
            [now, f, t, o],
        )
        self.result.excluded = int(wh.scalar("SELECT count(DISTINCT record_key) FROM feed_excl") or 0)
        if self.result.packaged:
            marks = ", ".join("?" * len(self.result.packaged))
            wh.execute(
                f"UPDATE feeds.delivery SET excluded_count = ? WHERE delivery_id IN ({marks})",
                [self.result.excluded, *self.result.packaged],
            )

    def drop_temp(self) -> None:
        """Drop the run's temp tables (selection, exclusions, staging)."""
        for name in ("feed_batches", "feed_cand", "feed_excl", *self.staged):
            self.wh.execute(f"DROP TABLE IF EXISTS {name}")

    def deliver(self, sleep: Callable[[float], None]) -> None:
        """Send every unsent package of this feed × target × institution in order; stop at a transient failure."""
        for delivery in ledger.unsent(self.wh, self.feed.name, self.target.name, self.org):

            def record(outcome: Outcome, delivery_id: str = delivery["delivery_id"]) -> None:
                ledger.mark_attempt(
                    self.wh, delivery_id, outcome.status, outcome.error, outcome.receipt, outcome.destination
                )

            outcome = send(self.target, delivery, sleep=sleep, on_attempt=record)
            if outcome.status == "delivered":
                self.result.delivered += 1
                self.result.files.append(str(outcome.destination))
                policy = ",".join(f"{k}={self.feed.policy(k)}" for k in ("name", "id_no", "phone", "address"))
                ledger.audit(
                    self.wh,
                    actor=actor(),
                    audience=f"feed:{self.feed.name}",
                    kind="feed_delivery",
                    object_name=self.feed.name,
                    org_code=self.org,
                    record_count=int(delivery["record_count"]),
                    destination=str(outcome.destination),
                    checksum=str(delivery["checksum"]),
                    detail=f"delivery {delivery['delivery_id']}; identifiers {policy}",
                )
                continue
            if outcome.status == "rejected":  # final: the receiver refuses this content; later packages go on
                self.result.rejected += 1
                continue
            self.result.failed += 1  # transient: stop, so a later version of a record never overtakes this one
            return


def run_feed(
    wh: Warehouse,
    feed: Feed,
    target: Target,
    org: str,
    period: str,
    data_dir: Path,
    *,
    sleep: Callable[[float], None] = time.sleep,
    send_now: bool = True,
    ensure: bool = True,
) -> FeedRun:
    """Package what is new for one institution and send everything unsent; returns the run's counts
    (`ensure=False`: the caller already made sure the ledger tables exist, e.g. once for many runs)."""
    if ensure:
        ensure_core(wh)
    run = _Run(wh, feed, target, org, period, data_dir)
    if all(wh.table_exists(t) for t in feed.source.requires):  # else: no such source landed yet, nothing new
        run.select()
        run.gate()
        run.package(mask_salt())
        run.close()
    if send_now:
        run.deliver(sleep)
    return run.result
