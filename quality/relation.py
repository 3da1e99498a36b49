"""A data set's relation: the SQL the rules (and GE) read — current versions of a raw table, blank text as NULL,
plus every rule's derived columns."""

from __future__ import annotations

from quality.catalog import Dataset, Rule
from quality.check_types import Compiled, compile_rule, lit
from warehouse import Warehouse
from warehouse.raw import whole_record_columns


def table_columns(wh: Warehouse, table: str) -> list[tuple[str, str]]:
    """(name, data type) of a table's columns in order; empty when the table does not exist."""
    return columns_of(wh, [table]).get(table, [])


def columns_of(wh: Warehouse, tables: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`table_columns` of many tables in one catalog query (tables that do not exist are absent)."""
    schemas = sorted({t.split(".", 1)[0] for t in tables})
    if not schemas:
        return {}
    out: dict[str, list[tuple[str, str]]] = {}
    for schema, name, column, dtype in wh.query(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        f"WHERE table_schema IN ({', '.join('?' for _ in schemas)}) ORDER BY table_schema, table_name, "
        "ordinal_position",
        schemas,
    ):
        if f"{schema}.{name}" in tables:
            out.setdefault(f"{schema}.{name}", []).append((str(column), str(dtype)))
    return out


def rule_columns(wh: Warehouse, tables: list[str]) -> dict[str, list[tuple[str, str]]]:
    """`columns_of` as the rules read them: without the raw tables' whole-record columns (contracts.yaml
    `raw_whole_record_columns`: the message or document as received, kept in raw for audit). No rule judges them,
    and the current-version tables would hold a second copy of the largest columns of the warehouse."""
    audit = whole_record_columns()
    found = columns_of(wh, tables)
    return {t: [c for c in cols if not (t.startswith("raw.") and c[0] in audit)] for t, cols in found.items()}


def version_order(alias: str) -> str:
    """Newest version first: last landed (ingest time, batch), then — for versions landed together — the order the
    raw append numbers them in (source update time, NULL first; origin), then the content hash (a total order)."""
    return (
        f"{alias}._ingested_at DESC, {alias}._batch_id DESC, {alias}._source_updated_at DESC NULLS LAST, "
        f"{alias}._origin DESC, {alias}._record_hash DESC"
    )


def latest_sql(ds: Dataset, org_filter: str = "") -> str:
    """The latest version per (institution, source key) of a raw table — what `row_number() OVER (PARTITION BY
    institution, key ORDER BY version_order) = 1` keeps — with the window only over the keys that have more than
    one version (most have one: those pass through a hash join, no sort). Source keys are never NULL in raw
    (lineage)."""
    org, key, table = ds.org_column, ds.key, ds.table
    where, also = (f" WHERE {org_filter}", f" AND {org_filter}") if org_filter else ("", "")
    multi = (
        f"(SELECT {org} AS _q_o, {key} AS _q_k FROM {table}{where} GROUP BY {org}, {key} HAVING count(*) > 1) m "
        f"ON m._q_o = t.{org} AND m._q_k = t.{key}"
    )
    return (
        f"SELECT t.*, 1 AS _q_rn FROM {table} t LEFT JOIN {multi} WHERE m._q_o IS NULL{also} "
        f"UNION ALL SELECT * FROM (SELECT t.*, row_number() OVER (PARTITION BY t.{org}, t.{key} ORDER BY "
        f"{version_order('t')}) AS _q_rn FROM {table} t JOIN {multi}) w WHERE _q_rn = 1"
    )


def base_sql(ds: Dataset, columns: list[tuple[str, str]], org_filter: str = "", current: str = "") -> str:
    """Current rows of the data set: for raw, the latest version per (institution, source key), deletions dropped —
    read from `current` (the data set's current-version table, quality/current.py) when given, else derived from
    raw. `org_filter` (SQL over the table's own columns) keeps some institutions; it applies before the latest
    version is chosen, which is per institution anyway."""
    wanted = set(ds.columns) | {ds.key, ds.org_column, ds.origin, ds.batch} if ds.columns else None
    select = []
    for name, dtype in columns:
        if wanted is not None and name not in wanted and not name.startswith("_"):
            continue
        text = dtype.lower() in ("varchar", "text", "character varying")
        select.append(f"NULLIF(trim({name}), '') AS {name}" if text and not name.startswith("_") else name)
    where = f" AND ({ds.where})" if ds.where else ""
    orgs = f" WHERE {org_filter}" if org_filter else ""
    if ds.kind == "raw":
        versions = f"SELECT * FROM {current} t{orgs}" if current else latest_sql(ds, org_filter)
        return f"SELECT {', '.join(select)} FROM ({versions}) v WHERE _op <> 'D'{where}"
    return f"SELECT {', '.join(select)} FROM (SELECT * FROM {ds.table} t{orgs}) t WHERE 1 = 1{where}"


def org_filter(ds: Dataset, org_codes: list[str]) -> str:
    """SQL keeping the institutions `org_codes` (none: no row); codes inline, as the filter appears several times."""
    return f"CAST({ds.org_column} AS VARCHAR) IN ({', '.join(lit(o) for o in org_codes) or 'NULL'})"


def relation_sql(
    ds: Dataset, rules: list[Rule], columns: list[tuple[str, str]], dialect: str, orgs: str = "", current: str = ""
) -> tuple[str, dict[str, Compiled]]:
    """The data set's relation with the derived columns of `rules`, and each rule's compiled form; `orgs` is an
    `org_filter`, `current` the data set's current-version table (raw data sets; default: derived from raw)."""
    compiled = {r.id: compile_rule(r, dialect) for r in rules}
    derived = {name: expr for c in compiled.values() for name, expr in c.derived.items()}
    pre = {name: expr for c in compiled.values() for name, expr in c.pre.items()}
    extra = "".join(f", {expr} AS {name}" for name, expr in derived.items())
    base = base_sql(ds, columns, orgs, current)
    if pre:
        base = f"SELECT p.*{''.join(f', {expr} AS {name}' for name, expr in pre.items())} FROM ({base}) p"
    lineage = (
        f", CAST({ds.org_column} AS VARCHAR) AS _q_org, CAST({ds.key} AS VARCHAR) AS _q_key, "
        f"CAST({ds.origin} AS VARCHAR) AS _q_origin, CAST({ds.batch} AS VARCHAR) AS _q_batch"
    )
    return f"SELECT b.*{lineage}{extra} FROM ({base}) b", compiled
