"""Stored rule outcomes of a raw data set: `quality.flags__<data set>` holds, for every current record failing at
least one storable rule, its lineage and one boolean per such rule. They are computed when versions are merged into
the current-version table (quality/current.py) — only for the records that may have changed — so a day's run
aggregates them instead of re-evaluating every rule over every record:
- row-local rules (required, domain, pattern, ID checks, ranges, temporal order, timeliness …): the merged records;
- group rules (duplicates): every record of a group (institution + compared columns) a merged record left or joined;
- reference rules (referential to an append-only raw table): the merged records and the stored failures (a missing
  reference may land later; one found stays found).
Each rule's column is named by a hash of its compiled SQL (and the data set's definition): a changed or new rule
finds its column missing and the data set's stored flags are recomputed from the current-version table."""

from __future__ import annotations

import hashlib
import json

from quality.catalog import Dataset, Rule
from quality.check_types import GROUP, REFERENCE, SET, Compiled, compile_rule, failure_sql, referring_to
from quality.current import SyncResult, current_table, keyed, sync_current
from quality.relation import base_sql, relation_sql
from warehouse import Warehouse

LINEAGE = ("_q_org", "_q_key", "_q_origin", "_q_batch")
AFFECTED = "q_flag_keys"  # (institution, source key) of the records whose stored flags are recomputed
GROUPS = "q_flag_groups"  # per group rule: the groups merged records left or joined
REFERRED = "q_flag_referred"  # per reference rule: the referenced rows the recomputed records refer to


def flags_table(ds: Dataset) -> str:
    """The data set's stored-flags table."""
    return f"quality.flags__{ds.name}"


def stored_rules(rules: list[Rule], dialect: str) -> list[Rule]:
    """The rules whose outcomes can be stored (all but SET scope), in catalog order."""
    return [r for r in rules if compile_rule(r, dialect).scope != SET]


def flag_columns(rules: list[Rule], dialect: str) -> dict[str, str]:
    """Rule id → its stored column: `_r_` + a hash of the rule's compiled SQL and its data set's definition."""
    out = {}
    for rule in rules:
        c = compile_rule(rule, dialect)
        spec = [dialect, repr(rule.dataset), c.expectation, c.kwargs, sorted(c.derived.items()),
                sorted(c.pre.items()), failure_sql(c, dialect), c.scope, c.group]  # fmt: skip
        out[rule.id] = "_r_" + hashlib.sha1(json.dumps(spec, default=str).encode()).hexdigest()[:16]
    return out


def _fresh(wh: Warehouse, ds: Dataset, names: list[str]) -> bool:
    """The stored table exists with exactly these rule columns."""
    return set(wh.columns(flags_table(ds))) == {*LINEAGE, *names}  # no columns: no such table


def _create(wh: Warehouse, ds: Dataset, names: list[str]) -> None:
    table = flags_table(ds)
    wh.execute(f"DROP TABLE IF EXISTS {table}")
    columns = ", ".join([*(f"{c} VARCHAR" for c in LINEAGE), *(f"{n} BOOLEAN" for n in names)])
    wh.execute(f"CREATE TABLE {table} ({columns})")
    if wh.dialect == "postgres":  # merges delete by key: an index there (DuckDB deletes by a hash join)
        wh.execute(f"CREATE INDEX ON {table} (_q_org, _q_key)")


def store_flags(
    wh: Warehouse, ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]], keys: str | None
) -> None:
    """(Re)compute the stored flags of the current records of `keys` (a table of `(_q_o, _q_k)` pairs, holding every
    record of any group it touches; None: all) from the current-version table; only failing records are kept."""
    table, names = flags_table(ds), flag_columns(rules, wh.dialect)
    where = keyed(ds, keys, wh.dialect) if keys else ""
    if keys:
        wh.execute(f"DELETE FROM {table} WHERE (_q_org, _q_key) IN (SELECT CAST(_q_o AS VARCHAR), "
                   f"CAST(_q_k AS VARCHAR) FROM {keys})")  # fmt: skip
    else:
        wh.execute(f"DELETE FROM {table}")
    narrowed, temps = _narrowed(wh, ds, rules, columns, keys)
    sql, compiled = relation_sql(ds, narrowed, columns, wh.dialect, where, current_table(ds))
    fails = ", ".join(f"coalesce({failure_sql(compiled[r.id], wh.dialect)}, false) AS {names[r.id]}" for r in rules)
    cols = ", ".join([*LINEAGE, *names.values()])
    wh.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM (SELECT {', '.join(LINEAGE)}, {fails} FROM ({sql}) r) f "
        f"WHERE {' OR '.join(names.values())}"
    )
    for temp in temps:
        wh.execute(f"DROP TABLE IF EXISTS {temp}")


def _narrowed(
    wh: Warehouse, ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]], keys: str | None
) -> tuple[list[Rule], list[str]]:
    """For a few records (`keys`), each reference rule reads only the rows of its referenced table that the records
    refer to (a temp table built by a semi-join on their values: small, where the whole referenced table would be
    hashed); a record's reference is in it exactly when it is in the whole table. All records: the rules as given.
    Returns the rules to compile and the temp tables to drop after."""
    if not keys:
        return rules, []
    out: list[Rule] = []
    temps: list[str] = []
    base = base_sql(ds, columns, keyed(ds, keys, wh.dialect), current_table(ds))
    for i, rule in enumerate(rules):
        c = compile_rule(rule, wh.dialect)
        if c.scope != REFERENCE:
            out.append(rule)
            continue
        table, org, ref, column = c.reference
        wh.execute(f"DROP TABLE IF EXISTS {REFERRED}{i}")
        wh.execute(
            f"CREATE TEMP TABLE {REFERRED}{i} AS SELECT r.{org}, r.{ref} FROM {table} r WHERE (r.{org}, r.{ref}) IN "
            f"(SELECT b._org_code, b.{column} FROM ({base}) b WHERE b.{column} IS NOT NULL)"
        )
        out.append(referring_to(rule, f"{REFERRED}{i}"))
        temps.append(f"{REFERRED}{i}")
    return out, temps


class FlagFollower:
    """Keeps a data set's stored flags in step with the merges of its current-version table (quality/current.py)."""

    def __init__(self, wh: Warehouse, ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]]) -> None:
        self.wh, self.ds, self.rules, self.columns = wh, ds, rules, columns
        compiled: dict[str, Compiled] = {r.id: compile_rule(r, wh.dialect) for r in rules}
        self.groups = sorted({c.group for c in compiled.values() if c.scope == GROUP})
        names = flag_columns(rules, wh.dialect)
        self.references = [names[r.id] for r in rules if compiled[r.id].scope == REFERENCE]

    def _base(self, keys: str | None = None) -> str:
        ds = self.ds
        where = keyed(ds, keys, self.wh.dialect) if keys else ""
        return base_sql(ds, self.columns, where, current_table(ds))

    def _collect_groups(self, keys: str, create: bool) -> None:
        for i, group in enumerate(self.groups):
            select = f"SELECT DISTINCT {', '.join(group)} FROM ({self._base(keys)}) b"
            if create:
                self.wh.execute(f"DROP TABLE IF EXISTS {GROUPS}{i}")
                self.wh.execute(f"CREATE TEMP TABLE {GROUPS}{i} AS {select}")
            else:
                self.wh.execute(f"INSERT INTO {GROUPS}{i} {select}")

    def before(self, keys: str) -> None:
        self._collect_groups(keys, create=True)  # the groups the old versions leave

    def after(self, keys: str | None) -> None:
        wh, ds = self.wh, self.ds
        if keys is None:
            store_flags(wh, ds, self.rules, self.columns, None)
            return
        self._collect_groups(keys, create=False)  # and the groups the new versions join
        wh.execute(f"DROP TABLE IF EXISTS {AFFECTED}")
        wh.execute(f"CREATE TEMP TABLE {AFFECTED} AS SELECT _q_o, _q_k FROM {keys}")
        for i, group in enumerate(self.groups):
            wh.execute(
                f"INSERT INTO {AFFECTED} SELECT {ds.org_column}, {ds.key} FROM ({self._base()}) b "
                f"WHERE ({', '.join(group)}) IN (SELECT * FROM {GROUPS}{i})"
            )
            wh.execute(f"DROP TABLE IF EXISTS {GROUPS}{i}")
        self.recheck(create=False)

    def recheck(self, create: bool = True) -> None:
        """Recompute the affected records (`create`: only the stored failures of reference rules, whose reference
        may have landed since — the referenced table can grow while this data set is unchanged)."""
        wh, ds = self.wh, self.ds
        if create:
            wh.execute(f"DROP TABLE IF EXISTS {AFFECTED}")
            wh.execute(f"CREATE TEMP TABLE {AFFECTED} (_q_o VARCHAR, _q_k VARCHAR)")
        if self.references:
            wh.execute(
                f"INSERT INTO {AFFECTED} SELECT _q_org, _q_key FROM {flags_table(ds)} "
                f"WHERE {' OR '.join(self.references)}"
            )
        store_flags(wh, ds, self.rules, self.columns, AFFECTED)
        wh.execute(f"DROP TABLE IF EXISTS {AFFECTED}")


def sync_stored(wh: Warehouse, ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]]) -> SyncResult:
    """Bring the current-version table and the stored flags of `rules`' storable rules up to date (call inside a
    transaction): flags follow every merge; a rule catalog change (columns differ) recomputes all of them."""
    stored = stored_rules(rules, wh.dialect)
    if not stored:
        return sync_current(wh, ds, columns)
    names = list(flag_columns(stored, wh.dialect).values())
    if _fresh(wh, ds, names):
        follower = FlagFollower(wh, ds, stored, columns)
        result = sync_current(wh, ds, columns, follower)
        if result.mode == "unchanged" and follower.references:
            follower.recheck()
        return result
    result = sync_current(wh, ds, columns)
    _create(wh, ds, names)
    store_flags(wh, ds, stored, columns, None)
    return result
