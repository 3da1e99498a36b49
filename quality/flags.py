"""Stored outcomes of a raw data set's row-local rules: `quality.flags__<data set>` holds, for every current record
failing at least one rule whose outcome depends on the record alone (required, domain, pattern, ID checks, ranges,
temporal order, timeliness …), its lineage and one boolean per such rule. They are computed when a version is merged
into the current-version table (quality/current.py) — only for the records merged — so a day's run aggregates them
instead of re-evaluating every rule over every record; set-level rules (duplicates, referential) still run over all.
Each rule's column is named by a hash of its compiled SQL (and the data set's definition): a changed or new rule
finds its column missing and the data set's stored flags are recomputed from the current-version table."""

from __future__ import annotations

import hashlib
import json

from quality.catalog import Dataset, Rule
from quality.check_types import compile_rule, failure_sql
from quality.current import SyncResult, current_table, sync_current
from quality.relation import relation_sql
from warehouse import Warehouse

LINEAGE = ("_q_org", "_q_key", "_q_origin", "_q_batch")


def flags_table(ds: Dataset) -> str:
    """The data set's stored-flags table."""
    return f"quality.flags__{ds.name}"


def stored_rules(rules: list[Rule], dialect: str) -> list[Rule]:
    """The rules whose outcome depends on the record alone (their flags can be stored), in catalog order."""
    return [r for r in rules if compile_rule(r, dialect).row_local]


def flag_columns(rules: list[Rule], dialect: str) -> dict[str, str]:
    """Rule id → its stored column: `_r_` + a hash of the rule's compiled SQL and its data set's definition."""
    out = {}
    for rule in rules:
        c = compile_rule(rule, dialect)
        spec = [dialect, repr(rule.dataset), c.expectation, c.kwargs, sorted(c.derived.items()),
                sorted(c.pre.items()), failure_sql(c, dialect)]  # fmt: skip
        out[rule.id] = "_r_" + hashlib.sha1(json.dumps(spec, default=str).encode()).hexdigest()[:16]
    return out


def _fresh(wh: Warehouse, ds: Dataset, names: list[str]) -> bool:
    """The stored table exists with exactly these rule columns."""
    table = flags_table(ds)
    return wh.table_exists(table) and set(wh.columns(table)) == {*LINEAGE, *names}


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
    """(Re)compute the stored flags of the current records of `keys` (a table of `(_q_o, _q_k)` pairs; None: all)
    from the current-version table; only records failing some rule are kept."""
    table, names = flags_table(ds), flag_columns(rules, wh.dialect)
    where = f"({ds.org_column}, {ds.key}) IN (SELECT _q_o, _q_k FROM {keys})" if keys else ""
    if keys:
        wh.execute(f"DELETE FROM {table} WHERE (_q_org, _q_key) IN (SELECT CAST(_q_o AS VARCHAR), "
                   f"CAST(_q_k AS VARCHAR) FROM {keys})")  # fmt: skip
    else:
        wh.execute(f"DELETE FROM {table}")
    sql, compiled = relation_sql(ds, rules, columns, wh.dialect, where, current_table(ds))
    fails = ", ".join(f"coalesce({failure_sql(compiled[r.id], wh.dialect)}, false) AS {names[r.id]}" for r in rules)
    cols = ", ".join([*LINEAGE, *names.values()])
    wh.execute(
        f"INSERT INTO {table} ({cols}) SELECT {cols} FROM (SELECT {', '.join(LINEAGE)}, {fails} FROM ({sql}) r) f "
        f"WHERE {' OR '.join(names.values())}"
    )


def sync_stored(wh: Warehouse, ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]]) -> SyncResult:
    """Bring the current-version table and the stored flags of `rules`' row-local rules up to date (call inside a
    transaction): flags follow every merge; a rule catalog change (columns differ) recomputes all of them."""
    local = stored_rules(rules, wh.dialect)
    if not local:
        return sync_current(wh, ds, columns)
    names = list(flag_columns(local, wh.dialect).values())
    if _fresh(wh, ds, names):
        return sync_current(wh, ds, columns, lambda keys: store_flags(wh, ds, local, columns, keys))
    result = sync_current(wh, ds, columns)
    _create(wh, ds, names)
    store_flags(wh, ds, local, columns, None)
    return result
