"""Collect one identity per (org_code, source_system, local_id) from every raw table that names a patient.

Sources (see dbt_project/models/sources.yml, mpi.xref): his_patient (HIS-A/HIS-B), lis_message (LIS),
pacs_study/pacs_report (PACS), emr_document (EMR), ph_* record_no (PH). The current version of each source
row is used (latest by source update time, soft deletes dropped); when several rows name the same local id
the richest source table wins, then the latest.
"""

from __future__ import annotations

import unicodedata
from typing import Any

import polars as pl

from mpi import normalize as nz
from warehouse import Warehouse

# (raw table, source-table priority, SELECT list producing the common identity columns)
_SOURCES: tuple[tuple[str, int, str], ...] = (
    ("his_patient", 1, "patient_id, name, sex, birth_date, id_type, id_no, phone, address"),
    ("lis_message", 1, "patient_id, coalesce(family_name, '') || coalesce(given_name, ''), sex, birth_date, "
                       "NULL, id_card_no, phone, address"),
    ("pacs_study", 1, "patient_id, patient_name, patient_sex, patient_birth_date, NULL, NULL, NULL, NULL"),
    ("pacs_report", 2, "patient_id, patient_name, NULL, NULL, NULL, NULL, NULL, NULL"),
    ("emr_document", 1, "patient_id, patient_name, sex_code, birth_date, NULL, id_card_no, NULL, NULL"),
    ("ph_health_record", 1, "record_no, name, sex, birth_date, NULL, id_no, phone, address"),
    ("ph_hypertension_followup", 2, "record_no, name, NULL, NULL, NULL, id_no, NULL, NULL"),
    ("ph_diabetes_followup", 2, "record_no, name, NULL, NULL, NULL, id_no, NULL, NULL"),
    ("ph_elderly_checkup", 2, "record_no, name, NULL, NULL, NULL, id_no, NULL, NULL"),
)  # fmt: skip
_COLS = ("local_id", "name", "sex", "birth_date", "id_type", "id_no", "phone", "address")
KEY = ("org_code", "source_system", "local_id")


def _present(wh: Warehouse, table: str, select: str) -> bool:
    if not wh.table_exists(f"raw.{table}"):
        return False
    cols = set(wh.columns(f"raw.{table}"))
    first = select.split(",")[0].strip()
    return first in cols


def raw_identity_sql(wh: Warehouse) -> str | None:
    """One SELECT over every present raw identity source, current versions only, one row per identity key."""
    parts = []
    for table, prio, select in _SOURCES:
        if not _present(wh, table, select):
            continue
        cols = set(wh.columns(f"raw.{table}"))
        exprs = [e.strip() for e in _split(select)]
        exprs = [e if (e == "NULL" or "(" in e or e in cols) else "NULL" for e in exprs]
        projected = ", ".join(f"CAST({e} AS VARCHAR) AS {c}" for e, c in zip(exprs, _COLS, strict=True))
        parts.append(
            f"SELECT _org_code AS org_code, _source_system AS source_system, {projected}, "
            f"_source_updated_at AS updated_at, _ingested_at AS ingested_at, _origin AS origin, "
            f"'{table}' AS source_table, {prio} AS prio FROM ("
            f"SELECT *, row_number() OVER (PARTITION BY _org_code, _source_key ORDER BY _source_updated_at DESC "
            f"NULLS LAST, _ingested_at DESC, _record_hash) AS _v FROM raw.{table}) AS cur "
            f"WHERE _v = 1 AND _op <> 'D'"
        )
    if not parts:
        return None
    union = "\nUNION ALL\n".join(parts)
    content = " || '|' || ".join(f"coalesce({c}, '~')" for c in (*_COLS[1:], "source_table"))
    return (
        f"SELECT *, md5({content}) AS raw_hash FROM (SELECT u.*, row_number() OVER (PARTITION BY org_code, "
        "source_system, local_id ORDER BY prio, updated_at DESC NULLS LAST, ingested_at DESC, origin) AS _rank "
        f"FROM ({union}) AS u WHERE local_id IS NOT NULL AND local_id <> '') AS ranked WHERE _rank = 1"
    )


def _split(select: str) -> list[str]:
    """Split a SELECT list on top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in select:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return [*out, cur]


def read_raw_identities(wh: Warehouse) -> pl.DataFrame:
    """Current raw identities (un-normalized), or an empty frame when no identity source has landed."""
    sql = raw_identity_sql(wh)
    if sql is None:
        cols = ("org_code", "source_system", *_COLS, "origin", "source_table", "raw_hash")
        return pl.DataFrame(schema={c: pl.String for c in cols} | {"updated_at": pl.Datetime("us")})
    # in key order (the MPI numbers identities in that order; on DuckDB it then needs no sort of its own)
    sql = f"SELECT * FROM ({sql}) AS identities ORDER BY org_code, source_system, local_id"
    df = wh.query_df(sql.replace("VARCHAR", "TEXT") if wh.dialect == "postgres" else sql)
    return df.drop("_rank", "prio", "ingested_at")


def _mapped(values: pl.Expr | str, fn: Any, frame: pl.DataFrame, dtype: Any = pl.String,
            where: pl.Expr | None = None) -> pl.Series:  # fmt: skip
    """Apply a scalar normalizer once per distinct value (names, dates, addresses repeat a lot); with `where`,
    only to the values of the rows it selects (the others map to null: callers use them in a `when` branch)."""
    column = frame.select(pl.col(values) if isinstance(values, str) else values).to_series()
    chosen = column if where is None else frame.filter(where).select(column.name).to_series()
    old = chosen.unique().drop_nulls()
    if old.len() == 0:
        return pl.Series(column.name, [None] * len(column), dtype=dtype)
    new = pl.Series([fn(v) for v in old.to_list()], dtype=dtype)
    return column.replace_strict(old, new, default=None, return_dtype=dtype)


def _pinyin_column(names: pl.Series) -> pl.Series:
    """Vectorized `nz.name_pinyin`: each distinct character converted once, names rebuilt from their characters."""
    distinct = names.unique().drop_nulls()
    distinct = distinct.filter(distinct != "")
    if distinct.len() == 0:
        return pl.Series(names.name, [None] * len(names), dtype=pl.String)
    chars = distinct.str.split("")
    alphabet = chars.explode().unique().drop_nulls()
    readings = pl.Series([nz._char_pinyin(c) for c in alphabet.to_list()], dtype=pl.String)
    pinyin = chars.list.eval(pl.element().replace_strict(alphabet, readings)).list.join(" ")
    return names.replace_strict(distinct, pinyin, default=None, return_dtype=pl.String)


def _township_columns(address: pl.Series, townships: list[dict[str, str]]) -> tuple[pl.Series, pl.Series]:
    """Vectorized `nz.township_code` (the longest contained township name, first listed on ties) and
    `nz.address_detail` (what follows that name; the last 12 characters when no township is named), computed once
    per distinct address."""
    distinct = address.unique().drop_nulls()
    if distinct.len() == 0:
        none = pl.Series(address.name, [None] * len(address), dtype=pl.String)
        return none, none
    ordered = sorted(townships, key=lambda t: -len(str(t["name"])))  # stable: ties keep the listed order
    a = pl.col("a")
    code: Any = pl.lit(None, pl.String)
    for t in reversed(ordered):
        code = pl.when(a.str.contains(str(t["name"]), literal=True)).then(pl.lit(str(t["code"]))).otherwise(code)
    table = pl.DataFrame({"a": distinct}).with_columns(code.alias("code"))
    parts = [table.filter(pl.col("code").is_null()).with_columns(a.str.slice(-12).alias("detail"))]
    for t in townships:
        after = a.str.splitn(str(t["name"]), 2).struct.field("field_1")
        sub = table.filter(pl.col("code") == str(t["code"]))
        parts.append(sub.with_columns(pl.when(after != "").then(after).alias("detail")))
    table = pl.concat(parts)
    return (
        address.replace_strict(table["a"], table["code"], default=None, return_dtype=pl.String),
        address.replace_strict(table["a"], table["detail"], default=None, return_dtype=pl.String),
    )


_NON_ASCII = r"[^\x00-\x7f]"
_WEIGHTS = nz.ID_WEIGHTS


def _check_char(body: pl.Expr) -> pl.Expr:
    """GB 11643 check character of the 17-digit `body` (null when not 17 digits)."""
    return body.map_batches(_check_series, return_dtype=pl.String)


def _check_series(body: pl.Series) -> pl.Series:
    """`_check_char` over a column: digits by integer arithmetic on the parsed body (17 digits fit an Int64),
    evaluated once, not one string slice per digit."""
    body = body.str.slice(0, 17)
    number = pl.select(pl.when(body.str.contains(r"^\d{17}$")).then(body.str.to_integer(strict=False))).to_series()
    total = sum(((number // 10 ** (16 - i)) % 10) * w for i, w in enumerate(_WEIGHTS))
    assert isinstance(total, pl.Series)
    return (total % 11).replace_strict({i: c for i, c in enumerate(nz.ID_CHECK)}, default=None,
                                       return_dtype=pl.String)  # fmt: skip


def _id_columns(frame: pl.DataFrame) -> pl.DataFrame:
    """Vectorized `nz.resident_id` + derived fields over columns id_type (CV02.01.101) and id_raw."""
    ascii_clean = pl.col("id_raw").str.replace_all(r"[\s\u3000·•・.]+", "").str.to_uppercase().replace("", None)
    cleaned = frame.with_columns(
        pl.when(pl.col("id_raw").str.contains(_NON_ASCII))
        .then(_mapped("id_raw", nz.clean_id, frame, where=pl.col("id_raw").str.contains(_NON_ASCII)))
        .otherwise(ascii_clean)
        .alias("_clean")
    )
    c = pl.col("_clean")
    is15 = c.str.contains(r"^\d{15}$")
    body15 = c.str.slice(0, 6) + "19" + c.str.slice(6)
    cleaned = cleaned.with_columns(
        pl.when(is15).then(body15 + _check_char(body15)).otherwise(c).alias("_num"), is15.alias("_up")
    )
    n = pl.col("_num")
    shaped = n.str.contains(r"^\d{17}[\dX]$")
    valid = (
        shaped
        & n.str.slice(6, 8).str.to_date("%Y%m%d", strict=False).is_not_null()
        & (_check_char(n.str.slice(0, 17)) == n.str.slice(17, 1))
    ).fill_null(False)
    resident = pl.col("id_type").is_null() | pl.col("id_type").is_in(["01", "02"])
    keep = resident & n.is_not_null() & ((pl.col("id_type") != "02") | valid).fill_null(True)
    cleaned = cleaned.with_columns(keep.alias("_keep"), valid.alias("_valid"))
    k = pl.col("_keep")
    first17 = n.str.contains(r"^\d{17}")
    return cleaned.with_columns(
        pl.when(k).then(n).otherwise(c).alias("id_no"),
        (k & pl.col("_valid")).alias("id_valid"),
        (k & pl.col("_up")).fill_null(False).alias("id_upgraded"),
        pl.when(k & first17 & (n.str.len_chars() == 18)).then(n.str.slice(0, 17)).alias("id17"),
        pl.when(k & first17 & (n.str.len_chars() == 18))
        .then(n.str.slice(6, 8).str.to_date("%Y%m%d", strict=False))
        .alias("id_birth_date"),
        pl.when(k & first17 & (n.str.len_chars() == 18))
        .then(
            pl.when(n.str.slice(16, 1).cast(pl.Int64, strict=False) % 2 == 1).then(pl.lit("1")).otherwise(pl.lit("2"))
        )
        .alias("id_sex_code"),
        pl.when(pl.col("id_type").is_null() & k).then(pl.lit("01")).otherwise(pl.col("id_type")).alias("id_type"),
    ).drop("_clean", "_num", "_up", "_keep", "_valid")


def _phone_column(frame: pl.DataFrame) -> pl.Series:
    """Vectorized `nz.normalize_phone`."""
    with_ascii = frame.with_columns(
        pl.when(pl.col("phone").str.contains(_NON_ASCII))
        .then(
            _mapped(
                "phone",
                lambda v: unicodedata.normalize("NFKC", v),
                frame,
                where=pl.col("phone").str.contains(_NON_ASCII),
            )
        )
        .otherwise(pl.col("phone"))
        .alias("_p")
    )
    d = pl.col("_p").str.replace_all(r"[^0-9]", "")
    d = (
        pl.when((d.str.len_chars() == 15) & d.str.starts_with("0086")).then(d.str.slice(4))
        .when((d.str.len_chars() == 13) & d.str.starts_with("86")).then(d.str.slice(2))
        .otherwise(d)
    )  # fmt: skip
    ok = d.str.contains(r"^1[3-9]\d{9}$") | d.str.len_chars().is_between(7, 12)
    return with_ascii.select(pl.when(ok).then(d).alias("phone")).to_series()


def normalize_identities(raw: pl.DataFrame, townships: list[dict[str, str]]) -> pl.DataFrame:
    """Normalized matching fields of raw identities (columnar; scalar rules in mpi/normalize.py).

    `raw` needs org_code, source_system, local_id, name, sex, birth_date, id_type, id_no, phone, address,
    updated_at, origin, source_table and raw_hash (kept as content_hash)."""
    if raw.height == 0:
        return pl.DataFrame(schema=IDENTITY_SCHEMA)
    df = raw.with_columns(
        _mapped("name", nz.normalize_name, raw).alias("name"),
        _mapped("sex", nz.normalize_sex, raw).alias("sex_code"),
        _mapped("birth_date", nz.normalize_date, raw, pl.Date).alias("birth_date"),
        _mapped("id_type", nz.normalize_id_type, raw).alias("id_type"),
        pl.col("id_no").alias("id_raw"),
        _phone_column(raw),
        _mapped("address", nz.normalize_address, raw).alias("address"),
    )
    df = _id_columns(df)
    town_code, town_detail = _township_columns(df["address"], townships)
    df = df.with_columns(_pinyin_column(df["name"]).alias("name_pinyin"), town_code.alias("township_code"),
                         town_detail.alias("address_detail"))  # fmt: skip
    key = pl.col("name_pinyin").str.replace_all(" ", "")
    for a, b in (("zh", "z"), ("ch", "c"), ("sh", "s"), ("ng", "n")):
        key = key.str.replace_all(a, b, literal=True)
    compound = pl.col("name").str.slice(0, 2).is_in(list(nz.compound_surnames()))
    df = df.with_columns(
        key.alias("name_key"),
        pl.when(compound)
        .then(pl.col("name").str.slice(0, 2))
        .otherwise(pl.col("name").str.slice(0, 1))
        .alias("surname"),
        pl.col("raw_hash").alias("content_hash"),
        pl.col("updated_at").cast(pl.Datetime("us")),
    )
    return df.select([pl.col(c).cast(t) for c, t in IDENTITY_SCHEMA.items()])


IDENTITY_SCHEMA: dict[str, Any] = {
    "org_code": pl.String, "source_system": pl.String, "local_id": pl.String, "source_table": pl.String,
    "origin": pl.String, "updated_at": pl.Datetime("us"), "name": pl.String, "name_pinyin": pl.String,
    "name_key": pl.String, "surname": pl.String, "sex_code": pl.String, "birth_date": pl.Date,
    "id_type": pl.String, "id_no": pl.String, "id_valid": pl.Boolean, "id_upgraded": pl.Boolean,
    "id17": pl.String, "id_birth_date": pl.Date, "id_sex_code": pl.String, "phone": pl.String,
    "address": pl.String, "township_code": pl.String, "address_detail": pl.String, "content_hash": pl.String,
}  # fmt: skip
IDENTITY_COLUMNS = tuple(IDENTITY_SCHEMA)


def collect(wh: Warehouse, townships: list[dict[str, str]]) -> pl.DataFrame:
    """Every current identity in raw, normalized (one row per org_code, source_system, local_id)."""
    return normalize_identities(read_raw_identities(wh), townships)
