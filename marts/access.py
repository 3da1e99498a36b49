"""Analyst access: masked views per audience on both warehouses; on PostgreSQL audience roles that can read only
their schema, institution roles with row-level security (own rows only), and audited exports.

Re-apply after every dbt build: dbt recreates its tables, which drops their policies and grants (and, on
PostgreSQL, the views over them) — until then the roles can read nothing new (fail closed).
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from marts import ledger
from marts.delivery import mask_salt
from marts.feed_config import actor as default_actor
from marts.masking import apply_policy
from warehouse import Warehouse, ensure_core

AUDIENCES_FILE = Path(__file__).with_name("audiences.yaml")
# GB 11643 shapes: 18 characters, or the legacy 15 digits (YYMMDD)
ID_PATTERN = r"[1-9][0-9]{5}((18|19|20)[0-9]{2}(0[1-9]|1[0-2])[0-9]{5}[0-9Xx]|[0-9]{2}(0[1-9]|1[0-2])[0-9]{5})"
PHONE_PATTERN = r"1[3-9][0-9]{9}"  # mainland mobile numbers
SCHEMA_REF = re.compile(r'"?\b([A-Za-z_][A-Za-z0-9_]*)"?\s*\.\s*["A-Za-z_]')


@dataclass(frozen=True)
class Audience:
    name: str
    schema: str
    role: str
    policy: dict[str, str]


@cache
def settings() -> dict[str, Any]:
    return yaml.safe_load(AUDIENCES_FILE.read_text(encoding="utf-8"))


def audiences() -> dict[str, Audience]:
    return {
        n: Audience(n, str(a["schema"]), str(a["role"]), dict(a["policy"])) for n, a in settings()["audiences"].items()
    }


def pii_kind(column: str) -> str | None:
    for kind, names in settings()["pii_columns"].items():
        if column.lower() in names:
            return str(kind)
    return None


def exposed_tables(wh: Warehouse) -> list[tuple[str, str, list[str]]]:
    """(schema, table, columns) of every table and view in the exposed schemas, in name order."""
    schemas = list(settings()["exposed_schemas"])
    marks = ", ".join("?" * len(schemas))
    rows = wh.query(
        f"SELECT table_schema, table_name, column_name FROM information_schema.columns WHERE table_schema IN ({marks}) "
        "ORDER BY table_schema, table_name, ordinal_position",
        schemas,
    )
    out: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        out.setdefault((schema, table), []).append(column)
    return [(s, t, cols) for (s, t), cols in out.items()]


def view_name(schema: str, table: str) -> str:
    return table if table.startswith(f"{schema}__") else f"{schema}__{table}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _view_sql(audience: Audience, schema: str, table: str, columns: list[str]) -> str:
    masks_anything = any(p != "clear" for p in audience.policy.values())
    free_text = set(settings()["free_text_columns"])
    parts = []
    for col in columns:
        kind = pii_kind(col)
        ref = _quote(col)
        if kind:
            expr = apply_policy(f"CAST({ref} AS VARCHAR)", kind, audience.policy.get(kind, "masked"), mask_salt())
        elif masks_anything and col in free_text:
            expr = "CAST(NULL AS VARCHAR)"
        else:
            expr = ref
        parts.append(f"{expr} AS {ref}")
    return (
        f"CREATE VIEW {audience.schema}.{_quote(view_name(schema, table))} AS "
        f"SELECT {', '.join(parts)} FROM {schema}.{_quote(table)}"
    )


def _role_exists(wh: Warehouse, role: str) -> bool:
    return bool(wh.scalar("SELECT count(*) FROM pg_roles WHERE rolname = ?", [role]))


def _ensure_role(wh: Warehouse, role: str) -> None:
    if not _role_exists(wh, role):
        wh.execute(f"CREATE ROLE {_quote(role)} NOLOGIN")


def institution_role(short: str, prefix: str | None = None) -> str:
    return f"{prefix if prefix is not None else settings()['institutions']['role_prefix']}{short.lower()}"


@dataclass
class AccessResult:
    views: dict[str, int]  # audience → views created
    roles: list[str]
    rls_tables: int


def apply_access(wh: Warehouse, institutions: list[tuple[str, str]], *, role_prefix: str = "") -> AccessResult:
    """Create the audience views (both dialects); on PostgreSQL the roles, grants and row-level security.
    `institutions` are (org_code, short name); `role_prefix` is put before every role name (tests)."""
    ensure_core(wh)
    tables = exposed_tables(wh)
    views: dict[str, int] = {}
    roles: list[str] = []
    with wh.transaction():
        for audience in audiences().values():
            wh.execute(f"DROP SCHEMA IF EXISTS {audience.schema} CASCADE")  # no stale views of dropped models
            wh.execute(f"CREATE SCHEMA {audience.schema}")
            for schema, table, columns in tables:
                wh.execute(_view_sql(audience, schema, table, columns))
            views[audience.name] = len(tables)
        if wh.dialect != "postgres":
            return AccessResult(views, roles, 0)
        for audience in audiences().values():
            role = f"{role_prefix}{audience.role}"
            _ensure_role(wh, role)
            roles.append(role)
            wh.execute(f"GRANT USAGE ON SCHEMA {audience.schema} TO {_quote(role)}")
            wh.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {audience.schema} TO {_quote(role)}")
        rls = _row_level_security(wh, institutions, role_prefix, roles)
    return AccessResult(views, roles, rls)


def _row_level_security(wh: Warehouse, institutions: list[tuple[str, str]], role_prefix: str, roles: list[str]) -> int:
    spec = settings()["institutions"]
    org_columns, shared = list(spec["org_columns"]), set(spec["shared_tables"])
    inst_roles = {code: institution_role(short, f"{role_prefix}{spec['role_prefix']}") for code, short in institutions}
    for role in inst_roles.values():
        _ensure_role(wh, role)
        roles.append(role)
    grantees = ", ".join(_quote(r) for r in inst_roles.values())
    present = {r[0] for r in wh.query("SELECT schema_name FROM information_schema.schemata")}
    schemas = [s for s in spec["schemas"] if s in present]
    marks = ", ".join("?" * len(schemas))
    rows = wh.query(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
        f"WHERE t.table_type = 'BASE TABLE' AND c.table_schema IN ({marks}) ORDER BY 1, 2, c.ordinal_position",
        schemas,
    )
    by_table: dict[tuple[str, str], list[str]] = {}
    for schema, table, column in rows:
        by_table.setdefault((schema, table), []).append(column)
    count = 0
    for schema in schemas:
        wh.execute(f"GRANT USAGE ON SCHEMA {schema} TO {grantees}")
    for (schema, table), columns in by_table.items():
        qualified = f"{schema}.{_quote(table)}"
        org_col = next((c for c in org_columns if c in columns), None)
        if org_col is None:
            if f"{schema}.{table}" in shared:
                wh.execute(f"GRANT SELECT ON {qualified} TO {grantees}")
            continue
        wh.execute(f"ALTER TABLE {qualified} ENABLE ROW LEVEL SECURITY")
        wh.execute(f"GRANT SELECT ON {qualified} TO {grantees}")
        for code, role in inst_roles.items():
            policy = _quote(f"{role}_rows")
            wh.execute(f"DROP POLICY IF EXISTS {policy} ON {qualified}")
            literal = code.replace("'", "''")
            wh.execute(
                f"CREATE POLICY {policy} ON {qualified} FOR SELECT TO {_quote(role)} "
                f"USING ({_quote(org_col)} = '{literal}')"
            )
        count += 1
    return count


def drop_roles(wh: Warehouse, roles: list[str]) -> None:
    """Remove roles (their grants and policies in this database first). PostgreSQL only."""
    for role in roles:
        if _role_exists(wh, role):
            wh.execute(f"DROP OWNED BY {_quote(role)}")
            wh.execute(f"DROP ROLE {_quote(role)}")


def _contains(dialect: str, column: str, pattern: str) -> str:
    """SQL: does the text contain the pattern as a whole token (not inside a longer code or hash)?"""
    token = f"(^|[^0-9A-Za-z])({pattern})([^0-9A-Za-z]|$)"
    if dialect == "duckdb":
        return f"regexp_matches({column}, '{token}')"
    return f"({column} ~ '{token}')"


def pii_leaks(wh: Warehouse, schema: str, sample: int = 0) -> list[tuple[str, str, int]]:
    """(view, column, rows) where a text value contains what looks like an unmasked 身份证号 or mobile number."""
    rows = wh.query(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND data_type IN ('VARCHAR', 'TEXT', 'text', 'character varying') ORDER BY table_name, ordinal_position",
        [schema],
    )
    by_view: dict[str, list[str]] = {}
    for view, column in rows:
        by_view.setdefault(view, []).append(column)
    leaks = []
    for view, columns in by_view.items():
        source = f"(SELECT * FROM {schema}.{_quote(view)} LIMIT {sample})" if sample else f"{schema}.{_quote(view)}"
        tests = [
            f"{_contains(wh.dialect, _quote(c), ID_PATTERN)} OR {_contains(wh.dialect, _quote(c), PHONE_PATTERN)}"
            for c in columns
        ]
        sums = ", ".join(f"sum(CASE WHEN {t} THEN 1 ELSE 0 END)" for t in tests)
        counts = wh.query(f"SELECT {sums} FROM {source} x")[0]
        leaks += [(view, c, int(n)) for c, n in zip(columns, counts, strict=True) if n]
    return leaks


def export_query(
    wh: Warehouse,
    sql: str,
    audience: str,
    out: Path,
    *,
    who: str | None = None,
    purpose: str = "",
    role_prefix: str = "",
) -> tuple[int, str]:
    """Run an analyst query against one audience's views only, write it as CSV and audit it.
    PostgreSQL runs it as the audience role; DuckDB refuses queries naming any other schema."""
    aud = audiences()[audience]
    foreign = {m.group(1).lower() for m in SCHEMA_REF.finditer(sql)} - {aud.schema}
    known = {"raw", "ops", "mpi", "staging", "cdr", "health_record", "marts", "quality", "feeds", "terminology"}
    if foreign & (known | {a.schema for a in audiences().values()}):
        raise PermissionError(f"audience {audience} may query only schema {aud.schema}; found {sorted(foreign)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    digest, count = hashlib.sha256(), 0
    with wh.transaction():
        if wh.dialect == "postgres":
            wh.execute(f"SET LOCAL ROLE {_quote(role_prefix + aud.role)}")
        with out.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle)
            for i, batch in enumerate(wh.iter_batches(sql)):
                if i == 0:
                    writer.writerow(batch.columns)
                for row in batch.iter_rows():
                    writer.writerow(["" if v is None else v for v in row])
                count += batch.height
        if wh.dialect == "postgres":
            wh.execute("RESET ROLE")
        digest.update(out.read_bytes())
        ledger.audit(
            wh,
            actor=who or default_actor(),
            audience=audience,
            kind="analyst_export",
            object_name=sql[:2000],
            org_code=None,
            record_count=count,
            destination=str(out),
            checksum=f"sha256:{digest.hexdigest()}",
            detail=purpose,
        )
    return count, digest.hexdigest()
