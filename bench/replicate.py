"""Scale a DuckDB warehouse's data N× in place, for benchmarks at county size without generating the county.

Every table of the given schemas that carries an institution column (`_org_code` or `org_code`) gets N-1 copies of
its rows under copied institutions (org code + "~k", k = 1..N-1); text key columns of a table whose contract key
lacks the institution get the same suffix, so keys stay unique. Each copy is an institution with exactly the
original's records and defects. Tables without an institution column (e.g. the MPI's golden records, keyed by EMPI
id) are left as they are. Used by bench_quality.py and bench_dbt.py, whose output says the rows were replicated.
"""

from __future__ import annotations

from quality.relation import table_columns
from warehouse import Warehouse
from warehouse.ddl import contracts

ORG_COLUMNS = ("_org_code", "org_code")
TEXT_TYPES = ("varchar", "text", "character varying")


def replicate(
    wh: Warehouse, copies: int, schemas: tuple[str, ...], since: dict[str, object] | None = None
) -> dict[str, int]:
    """N-1 more copies of the rows of `schemas`' tables under copied institutions; returns rows per table after.

    With `since` ({table: landing time}), only a table's rows with `_ingested_at` after that time are copied
    (an increment landed on the originals is replicated the same way as the base; tables not named copy nothing).
    """
    keys = {t: spec.get("key") or [] for t, spec in contracts()["tables"].items()}
    rows: dict[str, int] = {}
    for schema in schemas:
        for table in wh.tables(schema):
            qualified = f"{schema}.{table}"
            columns = table_columns(wh, qualified)
            names = [c for c, _ in columns]
            org = next((c for c in ORG_COLUMNS if c in names), None)
            if org is None or (since is not None and qualified not in since):
                continue
            where = f"WHERE {org} NOT LIKE '%~%'"
            params: list[object] = []
            if since is not None and since[qualified] is not None:  # None: the table was empty, copy all
                where += " AND _ingested_at > ?"
                params.append(since[qualified])
            if not wh.scalar(f"SELECT count(*) FROM {qualified} {where}", params):
                continue
            key = keys.get(qualified, [])
            text = {c for c, t in columns if t.lower() in TEXT_TYPES}
            suffixed = {org} | ({k for k in key if k in text} if org not in key else set())
            select = ", ".join(f"{c} || '~' || CAST(g.k AS VARCHAR)" if c in suffixed else c for c in names)
            wh.execute(
                f"INSERT INTO {qualified} ({', '.join(names)}) SELECT {select} FROM {qualified} "
                f"CROSS JOIN generate_series(1, {copies - 1}) AS g(k) {where}",
                params,
            )
            rows[qualified] = int(wh.scalar(f"SELECT count(*) FROM {qualified}"))
    return rows


def landing_marks(wh: Warehouse, schemas: tuple[str, ...]) -> dict[str, object]:
    """The newest `_ingested_at` of every table of `schemas` that has one (before an increment lands)."""
    marks: dict[str, object] = {}
    for schema in schemas:
        for table in wh.tables(schema):
            qualified = f"{schema}.{table}"
            if any(c == "_ingested_at" for c, _ in table_columns(wh, qualified)):
                marks[qualified] = wh.scalar(f"SELECT max(_ingested_at) FROM {qualified}")
    return marks
