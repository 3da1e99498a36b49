"""Check types: each turns a rule's parameters into (a) derived columns computed in the warehouse over the data
set's relation and (b) one Great Expectations expectation over a column of that relation. The in-warehouse SQL
failure condition comes from the same expectation (`failure_sql`), so the warehouse and GE judge alike."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

from quality.catalog import CatalogError, Rule

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
OK, FAIL = "ok", "fail"
ROW, GROUP, REFERENCE, SET = "row", "group", "reference", "set"
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)  # GB 11643-1999
ID18 = "^[0-9]{17}[0-9Xx]$"


@dataclass(frozen=True)
class Compiled:
    """What a rule adds to its data set's relation and the expectation that judges it."""

    expectation: str  # GE expectation type (snake case)
    kwargs: dict[str, Any]
    derived: dict[str, str] = field(default_factory=dict)  # column name → SQL expression over the base relation
    # column name → SQL expression computed one layer below `derived` (which may use it): a costly value a rule
    # needs several times is computed once per record
    pre: dict[str, str] = field(default_factory=dict)
    # what the outcome depends on, i.e. when a stored outcome (quality/flags.py) must be recomputed: ROW the record
    # alone (when it is merged); GROUP the records sharing `group` (when one of them is merged); REFERENCE also an
    # append-only raw table (a failure may pass once the referenced row lands: stored failures are rechecked); SET
    # anything else (evaluated every run)
    scope: str = ROW
    group: tuple[str, ...] = ()  # GROUP: the partition columns
    # REFERENCE: (referenced table, its institution column, its referenced column, the record's column)
    reference: tuple[str, str, str, str] = ()

    @property
    def column(self) -> str:
        return str(self.kwargs["column"])


def lit(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def col(rule: Rule, name: str = "column") -> str:
    column = str(rule.params.get(name, ""))
    if not _IDENT.match(column):
        raise CatalogError(f"rule {rule.id}: {name} {column!r} must be a plain lower-case column name")
    return column


def flag_name(rule: Rule) -> str:
    return "_q_" + re.sub(r"[^a-z0-9]+", "_", rule.id.lower()).strip("_")


def digits(expr: str) -> str:
    return f"regexp_replace(CAST({expr} AS VARCHAR), '[^0-9]', '', 'g')"


def regex(expr: str, pattern: str, dialect: str) -> str:
    """`expr` matches `pattern` somewhere (anchor the pattern for a full match), as GE's match_regex does."""
    if dialect == "duckdb":
        return f"regexp_matches({expr}, {lit(pattern)})"
    return f"({expr} ~ {lit(pattern)})"


def date_of(expr: str, dialect: str) -> str:
    """The date of a text time in any of the sources' layouts (YYYYMMDD…, YYYY-MM-DD …), NULL if not one."""
    d = digits(expr)
    text = f"substr({d}, 1, 4) || '-' || substr({d}, 5, 2) || '-' || substr({d}, 7, 2)"
    ok = regex(d, "^[12][0-9]{3}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])", dialect)
    return f"(CASE WHEN {ok} THEN CAST({text} AS DATE) END)"


def flag(condition_ok: str, applies: str = "1 = 1") -> str:
    """'ok' / 'fail' where the rule applies, NULL (not evaluated) elsewhere."""
    return f"(CASE WHEN {applies} THEN (CASE WHEN {condition_ok} THEN '{OK}' ELSE '{FAIL}' END) END)"


def flagged(rule: Rule, expr: str, pre: dict[str, str] | None = None) -> Compiled:
    name = flag_name(rule)
    return Compiled("expect_column_values_to_be_in_set", {"column": name, "value_set": [OK]}, {name: expr}, pre or {})


@cache
def seed_map(path: str) -> tuple[tuple[str, str, str], ...]:
    """(source system, local code, standard code) rows of a dbt terminology seed (the same map dbt uses); only
    `approved` rows count, as in dbt's `decode` — a `proposed` mapping still waits for review."""
    with (SEEDS / path).open(encoding="utf-8") as handle:
        return tuple(
            (r["source_system"], r["local_code"], r["std_code"])
            for r in csv.DictReader(handle)
            if r.get("review_status", "approved") == "approved"
        )


def _mapped(rule: Rule, column: str) -> str:
    """CASE giving the standard code of a local code per source system (NULL when unmapped)."""
    system = col(rule, "system_column") if "system_column" in rule.params else "_source_system"
    whens = " ".join(
        f"WHEN {system} = {lit(s)} AND {column} = {lit(local)} THEN {lit(std)}"
        for s, local, std in seed_map(str(rule.params["map"]))
    )
    return f"(CASE {whens} END)"


# -- check types -------------------------------------------------------------------------------------------------
def required(rule: Rule, dialect: str) -> Compiled:
    return Compiled("expect_column_values_to_not_be_null", {"column": col(rule)})


def in_set(rule: Rule, dialect: str) -> Compiled:
    values = rule.params.get("values") or []
    if not values:
        raise CatalogError(f"rule {rule.id}: in_set needs a non-empty 'values' list")
    return Compiled("expect_column_values_to_be_in_set", {"column": col(rule), "value_set": [str(v) for v in values]})


def in_map(rule: Rule, dialect: str) -> Compiled:
    """The local code has a mapping to the standard value domain (terminology seed)."""
    column = col(rule)
    return flagged(rule, flag(f"{_mapped(rule, column)} IS NOT NULL", f"{column} IS NOT NULL"))


def pattern(rule: Rule, dialect: str) -> Compiled:
    return Compiled("expect_column_values_to_match_regex", {"column": col(rule), "regex": str(rule.params["pattern"])})


def _id18(column: str, dialect: str) -> tuple[str, dict[str, str]]:
    """Whether `column` is an 18-character ID, as a `pre` column shared by the ID rules of that column."""
    name = f"_q_id18__{column}"
    return name, {name: regex(column, ID18, dialect)}


def id_check_digit(rule: Rule, dialect: str) -> Compiled:
    """GB 11643-1999 check character of an 18-character 身份证号 (other lengths are not judged here)."""
    column = col(rule)
    total = " + ".join(f"CAST(substr({column}, {i + 1}, 1) AS INTEGER) * {w}" for i, w in enumerate(ID_WEIGHTS))
    check = f"substr('10X98765432', mod({total}, 11) + 1, 1)"  # mod(): a literal % trips DB-API drivers
    is18, pre = _id18(column, dialect)
    return flagged(rule, flag(f"upper(substr({column}, 18, 1)) = {check}", is18), pre)


def id_sex(rule: Rule, dialect: str) -> Compiled:
    """The sex digit of the ID (17th, odd = male) agrees with the recorded sex (mapped to GB/T 2261.1)."""
    column, sex = col(rule), col(rule, "sex_column")
    is18, pre = _id18(column, dialect)
    std = flag_name(rule) + "_std"  # the recorded sex's standard code, mapped once per record
    agrees = f"(mod(CAST(substr({column}, 17, 1) AS INTEGER), 2) = 1) = ({std} = '1')"
    return flagged(rule, flag(agrees, f"{is18} AND {std} IN ('1', '2')"), pre | {std: _mapped(rule, sex)})


def id_birth(rule: Rule, dialect: str) -> Compiled:
    """The birth date in the ID (18: chars 7–14 = YYYYMMDD; 15: chars 7–12 = YYMMDD) equals the recorded birth date."""
    column, birth = col(rule), col(rule, "birth_column")
    is18, pre = _id18(column, dialect)
    born = flag_name(rule) + "_digits"  # the recorded birth date's digits, once per record
    recorded = f"(CASE WHEN length({column}) = 18 THEN substr({born}, 1, 8) ELSE substr({born}, 3, 6) END)"
    from_id = f"(CASE WHEN length({column}) = 18 THEN substr({column}, 7, 8) ELSE substr({column}, 7, 6) END)"
    applies = f"({is18} OR {regex(column, '^[0-9]{15}$', dialect)}) AND {birth} IS NOT NULL"
    return flagged(rule, flag(f"{recorded} = {from_id}", applies), pre | {born: digits(birth)})


def numeric_range(rule: Rule, dialect: str) -> Compiled:
    """A numeric value lies within [min, max] (plausibility); non-numeric values are left to other rules."""
    column = col(rule)
    name = flag_name(rule)
    numeric = regex(f"CAST({column} AS VARCHAR)", r"^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$", dialect)
    expr = f"(CASE WHEN {numeric} THEN CAST({column} AS DOUBLE PRECISION) END)"
    kwargs: dict[str, Any] = {"column": name}
    for bound in ("min_value", "max_value"):
        if bound in rule.params:
            kwargs[bound] = float(rule.params[bound])
    return Compiled("expect_column_values_to_be_between", kwargs, {name: expr})


def ref_range(rule: Rule, dialect: str) -> Compiled:
    """A numeric result is ≥ 0 and ≤ max(factor × the upper reference limit sent with it, floor): possible at all."""
    column, ref = col(rule), col(rule, "ref_column")
    factor = float(rule.params.get("factor", 10))
    num = r"^-?[0-9]+(\.[0-9]+)?$"
    high = f"split_part({ref}, '-', 2)"
    positive = r"^[0-9]+(\.[0-9]+)?$"
    applies = f"{regex(column, num, dialect)} AND {regex(high, positive, dialect)}"
    value = f"CAST({column} AS DOUBLE PRECISION)"
    floor = float(rule.params.get("floor", 0))  # results up to this are possible whatever the reference range
    ok = f"{value} >= 0 AND {value} <= greatest({factor} * CAST({high} AS DOUBLE PRECISION), {floor})"
    return flagged(rule, flag(ok, applies))


def temporal_order(rule: Rule, dialect: str) -> Compiled:
    """`before` is not later than `after` (times compared as YYYYMMDDHHMMSS digits)."""
    before, after = col(rule, "before"), col(rule, "after")
    b, a = f"rpad({digits(before)}, 14, '0')", f"rpad({digits(after)}, 14, '0')"
    return flagged(rule, flag(f"{b} <= {a}", f"{before} IS NOT NULL AND {after} IS NOT NULL"))


def logic(rule: Rule, dialect: str) -> Compiled:
    """Where `when` holds, `then` must hold (e.g. a discharged stay has an admission time)."""
    when, then = str(rule.params["when"]), str(rule.params["then"])
    if ";" in when + then:
        raise CatalogError(f"rule {rule.id}: when/then must be single SQL boolean expressions")
    reads_others = re.search(r"\bselect\b", when + then, re.IGNORECASE) is not None  # a subquery: not row-local
    return replace(flagged(rule, flag(f"({then})", f"({when})")), scope=SET if reads_others else ROW)


def referential(rule: Rule, dialect: str) -> Compiled:
    """The value refers to a record of the same institution in another table (e.g. a result's order)."""
    column, table, ref = col(rule), str(rule.params["table"]), col(rule, "ref_column")
    org = str(rule.params.get("ref_org_column", "_org_code"))
    exists = f"(b._org_code, b.{column}) IN (SELECT r.{org}, r.{ref} FROM {table} r)"  # uncorrelated: one hash join
    scope = REFERENCE if table.startswith("raw.") else SET  # raw is append-only: a reference once found stays
    return replace(
        flagged(rule, flag(exists, f"{column} IS NOT NULL")), scope=scope, reference=(table, org, ref, column)
    )


def referring_to(rule: Rule, table: str) -> Rule:
    """The referential rule reading `table` (with the same columns) instead of its referenced table."""
    return replace(rule, params={**rule.params, "table": table})


def duplicate(rule: Rule, dialect: str) -> Compiled:
    """The same content under a second key: every record after the first of its group fails."""
    columns = [str(c) for c in rule.params["columns"]]
    if not all(_IDENT.match(c) for c in columns):
        raise CatalogError(f"rule {rule.id}: duplicate columns must be plain column names")
    order = str(rule.params.get("order", "_source_key"))
    nonnull = " AND ".join(f"{c} IS NOT NULL" for c in columns)
    rank = f"row_number() OVER (PARTITION BY _org_code, {', '.join(columns)} ORDER BY {order})"
    return replace(flagged(rule, flag(f"{rank} = 1", nonnull)), scope=GROUP, group=("_org_code", *columns))


def timeliness(rule: Rule, dialect: str) -> Compiled:
    """The record was (last) delivered after its service day's cut-off but within the next day: the T+1 run
    missed it. Later edits (two or more days on) are corrections, not late delivery."""
    at, updated = str(rule.params.get("at") or col(rule)), col(rule, "updated_column")
    if ";" in at:
        raise CatalogError(f"rule {rule.id}: at must be one SQL expression")
    cutoff = int(float(rule.params.get("cutoff_hours", 24)) * 60)
    day = flag_name(rule) + "_day"  # the service day, parsed once per record
    start = f"CAST({day} AS TIMESTAMP)"
    late = (
        f"{updated} >= {start} + INTERVAL '{cutoff} minutes' "
        f"AND {updated} < {start} + INTERVAL '{cutoff + 1440} minutes'"
    )
    # without a service time a record cannot be shown to be on time: it fails (its missing time is a defect too)
    ok = flag(f"{day} IS NOT NULL AND NOT ({late})", f"{updated} IS NOT NULL")
    return flagged(rule, ok, {day: date_of(at, dialect)})


def file_timeliness(rule: Rule, dialect: str) -> Compiled:
    """A file (ops.ingest_file) arrived before the cut-off of its data day (default 24:00)."""
    arrived, day = col(rule), col(rule, "day_column")
    cutoff = int(float(rule.params.get("cutoff_hours", 24)) * 60)
    return flagged(rule, flag(f"{arrived} <= CAST({day} AS TIMESTAMP) + INTERVAL '{cutoff} minutes'",
                              f"{arrived} IS NOT NULL AND {day} IS NOT NULL"))  # fmt: skip


def quarantined(rule: Rule, dialect: str) -> Compiled:
    """Every record in quarantine failed to parse: the data set is the quarantine of one source kind."""
    return flagged(rule, f"'{FAIL}'")


CHECK_TYPES: dict[str, Callable[[Rule, str], Compiled]] = {
    "required": required,
    "in_set": in_set,
    "in_map": in_map,
    "pattern": pattern,
    "id_check_digit": id_check_digit,
    "id_sex": id_sex,
    "id_birth": id_birth,
    "range": numeric_range,
    "ref_range": ref_range,
    "temporal_order": temporal_order,
    "logic": logic,
    "referential": referential,
    "duplicate": duplicate,
    "timeliness": timeliness,
    "file_timeliness": file_timeliness,
    "quarantined": quarantined,
    "stability": numeric_range,  # e.g. days delivered without a failed batch; link rate ≥ target
}


def compile_rule(rule: Rule, dialect: str) -> Compiled:
    try:
        build = CHECK_TYPES[rule.check_type]
    except KeyError as exc:
        raise CatalogError(
            f"rule {rule.id}: unknown check {rule.check_type!r}; known: {', '.join(CHECK_TYPES)}"
        ) from exc
    return build(rule, dialect)


def failure_sql(compiled: Compiled, dialect: str) -> str:
    """SQL TRUE for a record the expectation counts as unexpected (NULLs are not judged, except by not_null)."""
    c, kw = compiled.column, compiled.kwargs
    if compiled.expectation == "expect_column_values_to_not_be_null":
        return f"({c} IS NULL)"
    if compiled.expectation == "expect_column_values_to_be_in_set":
        return f"({c} IS NOT NULL AND {c} NOT IN ({', '.join(lit(v) for v in kw['value_set'])}))"
    if compiled.expectation == "expect_column_values_to_match_regex":
        return f"({c} IS NOT NULL AND NOT {regex(c, kw['regex'], dialect)})"
    if compiled.expectation == "expect_column_values_to_be_between":
        parts = []
        if "min_value" in kw:
            parts.append(f"{c} < {kw['min_value']}")
        if "max_value" in kw:
            parts.append(f"{c} > {kw['max_value']}")
        return f"({c} IS NOT NULL AND ({' OR '.join(parts) or 'false'}))"
    raise CatalogError(f"no SQL for expectation {compiled.expectation}")
