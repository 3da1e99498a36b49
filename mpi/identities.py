"""Collect one identity per (org_code, source_system, local_id) from every raw table that names a patient.

Sources (see dbt_project/models/sources.yml, mpi.xref): his_patient (HIS-A/HIS-B), lis_message (LIS),
pacs_study/pacs_report (PACS), emr_document (EMR), ph_* record_no (PH). The current version of each source
row is used (latest by source update time, soft deletes dropped); when several rows name the same local id
the richest source table wins, then the latest.
"""

from __future__ import annotations

import hashlib
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
    return (
        "SELECT * FROM (SELECT u.*, row_number() OVER (PARTITION BY org_code, source_system, local_id "
        "ORDER BY prio, updated_at DESC NULLS LAST, ingested_at DESC, origin) AS _rank "
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
        return pl.DataFrame(schema={c: pl.String for c in ("org_code", "source_system", *_COLS)})
    df = wh.query_df(sql.replace("VARCHAR", "TEXT") if wh.dialect == "postgres" else sql)
    return df.drop("_rank", "prio", "ingested_at")


def _cached(fn: Any, values: pl.Series) -> pl.Series:
    """Apply a scalar normalizer once per distinct value (names repeat a lot)."""
    uniq = values.unique().drop_nulls().to_list()
    table = {v: fn(v) for v in uniq}
    return values.replace_strict(table, default=None, return_dtype=pl.String) if table else values


def normalize_identities(raw: pl.DataFrame, townships: list[dict[str, str]]) -> pl.DataFrame:
    """Add the normalized matching fields and a content hash to raw identities."""
    if raw.height == 0:
        return raw.with_columns([pl.lit(None, pl.String).alias(c) for c in IDENTITY_COLUMNS if c not in raw.columns])
    rows = raw.to_dicts()
    names = {n: nz.normalize_name(n) for n in {r["name"] for r in rows}}
    keys = {n: (nz.name_pinyin(n), nz.name_key(n)) for n in set(names.values()) if n}
    ids: dict[tuple[Any, Any], Any] = {}
    out: dict[str, list[Any]] = {c: [] for c in IDENTITY_COLUMNS}
    towns = {str(t["code"]): str(t["name"]) for t in townships}
    for r in rows:
        name = names[r["name"]]
        id_type = nz.normalize_id_type(r["id_type"])
        k = (id_type, r["id_no"])
        if k not in ids:
            ids[k] = nz.resident_id(id_type, r["id_no"])
        id18, valid, upgraded = ids[k]
        address = nz.normalize_address(r["address"])
        town = nz.township_code(address, townships)
        py, nk = keys.get(name, (None, None)) if name else (None, None)
        values = {
            "org_code": r["org_code"], "source_system": r["source_system"], "local_id": r["local_id"],
            "source_table": r["source_table"], "origin": r["origin"],
            "updated_at": r["updated_at"],
            "name": name, "name_pinyin": py, "name_key": nk, "surname": nz.surname(name),
            "sex_code": nz.normalize_sex(r["sex"]), "birth_date": nz.normalize_date(r["birth_date"]),
            "id_type": id_type or ("01" if id18 else None),
            "id_no": id18 if id18 else nz.clean_id(r["id_no"]),
            "id_valid": bool(valid), "id_upgraded": bool(upgraded),
            "id17": id18[:17] if id18 and len(id18) == 18 and id18[:17].isdigit() else None,
            "id_birth_date": nz.id_birth_date(id18) if id18 else None,
            "id_sex_code": nz.id_sex(id18) if id18 else None,
            "phone": nz.normalize_phone(r["phone"]), "address": address, "township_code": town,
            "address_detail": nz.address_detail(address, towns.get(town) if town else None),
        }  # fmt: skip
        for c in IDENTITY_COLUMNS:
            if c != "content_hash":
                out[c].append(values[c])
        out["content_hash"].append(_hash(values))
    return pl.DataFrame(out, schema=IDENTITY_SCHEMA)


def _hash(values: dict[str, Any]) -> str:
    payload = "\x1f".join("" if values[c] is None else str(values[c]) for c in HASHED)
    return hashlib.md5(payload.encode("utf-8")).hexdigest()


IDENTITY_SCHEMA: dict[str, Any] = {
    "org_code": pl.String, "source_system": pl.String, "local_id": pl.String, "source_table": pl.String,
    "origin": pl.String, "updated_at": pl.Datetime("us"), "name": pl.String, "name_pinyin": pl.String,
    "name_key": pl.String, "surname": pl.String, "sex_code": pl.String, "birth_date": pl.Date,
    "id_type": pl.String, "id_no": pl.String, "id_valid": pl.Boolean, "id_upgraded": pl.Boolean,
    "id17": pl.String, "id_birth_date": pl.Date, "id_sex_code": pl.String, "phone": pl.String,
    "address": pl.String, "township_code": pl.String, "address_detail": pl.String, "content_hash": pl.String,
}  # fmt: skip
IDENTITY_COLUMNS = tuple(IDENTITY_SCHEMA)
HASHED = ("name", "sex_code", "birth_date", "id_type", "id_no", "phone", "address")


def collect(wh: Warehouse, townships: list[dict[str, str]]) -> pl.DataFrame:
    """Every current identity in raw, normalized (one row per org_code, source_system, local_id)."""
    return normalize_identities(read_raw_identities(wh), townships)
