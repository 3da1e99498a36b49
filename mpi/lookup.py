"""Lookups on the index, modelled on IHE PIX (cross-references) and PDQ (demographic query).

- `empi_for(system, local_id)`: the active EMPI id of one source identity (PIX query).
- `xrefs(empi)`: every (org_code, source_system, local_id) of a person (PIX cross-reference list).
- `search(...)`: fuzzy demographic search, candidates ranked by the same Fellegi–Sunter weights (PDQ).
- `golden(empi)`: the golden record (a retired id answers with the person it was merged into).
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import duckdb
import polars as pl

from mpi import normalize as nz
from mpi.identities import IDENTITY_SCHEMA
from mpi.match import _frame, load_settings, weight_sql
from warehouse import Warehouse

LOOKUP_INDEXES = (
    ("mpi_identity_name_key", "mpi.identity (name_key)"),
    ("mpi_identity_id17", "mpi.identity (id17)"),
    ("mpi_identity_phone", "mpi.identity (phone)"),
    ("mpi_identity_birth", "mpi.identity (birth_date, surname)"),
    ("mpi_xref_empi", "mpi.xref (empi_id)"),
    ("mpi_xref_local", "mpi.xref (source_system, local_id)"),
)


def ensure_lookup_indexes(wh: Warehouse) -> None:
    """Secondary indexes for lookups (PostgreSQL; DuckDB scans its columnar tables fast enough)."""
    if wh.dialect == "postgres":
        for name, target in LOOKUP_INDEXES:
            wh.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {target}")


def _resolve(wh: Warehouse, empi: str | None) -> str | None:
    """Follow retired → survivor links to the active EMPI id."""
    seen = set()
    while empi and empi not in seen:
        seen.add(empi)
        row = wh.query("SELECT status, retired_into FROM mpi.person WHERE empi_id = ?", [empi])
        if not row or row[0][0] == "active":
            return empi
        empi = row[0][1]
    return empi


def empi_for(wh: Warehouse, source_system: str, local_id: str, org_code: str | None = None) -> str | None:
    """PIX query: the EMPI id of (source_system, local_id), within one institution when `org_code` is given.

    Without `org_code` the local id must be unambiguous across institutions (else ValueError)."""
    sql = "SELECT DISTINCT empi_id FROM mpi.xref WHERE source_system = ? AND local_id = ?"
    params: list[Any] = [source_system, local_id]
    if org_code:
        sql += " AND org_code = ?"
        params.append(org_code)
    rows = wh.query(sql, params)
    if len(rows) > 1:
        raise ValueError(f"{source_system}/{local_id} is ambiguous across institutions: give the org code")
    return _resolve(wh, rows[0][0]) if rows else None


def xrefs(wh: Warehouse, empi: str) -> list[dict[str, Any]]:
    """PIX cross-reference list of a person."""
    return wh.query_dicts(
        "SELECT org_code, source_system, local_id, link_method, link_score, linked_at FROM mpi.xref "
        "WHERE empi_id = ? ORDER BY org_code, source_system, local_id",
        [_resolve(wh, empi)],
    )


def golden(wh: Warehouse, empi: str) -> dict[str, Any] | None:
    """The golden record of a person (or of the person a retired id was merged into)."""
    rows = wh.query_dicts("SELECT * FROM mpi.person WHERE empi_id = ?", [_resolve(wh, empi)])
    return rows[0] if rows else None


def _query_identity(
    name: str | None,
    birth_date: str | date | None,
    sex: str | None,
    id_no: str | None,
    phone: str | None,
    address: str | None,
    townships: list[dict[str, str]],
) -> dict[str, Any]:
    nm = nz.normalize_name(name)
    id18, valid, _ = nz.normalize_id(id_no)
    addr = nz.normalize_address(address)
    town = nz.township_code(addr, townships)
    names = {str(t["code"]): str(t["name"]) for t in townships}
    return {
        "org_code": "?", "source_system": "query", "local_id": "?", "name": nm, "name_pinyin": nz.name_pinyin(nm),
        "name_key": nz.name_key(nm), "surname": nz.surname(nm), "sex_code": nz.normalize_sex(sex),
        "birth_date": nz.normalize_date(birth_date), "id_no": id18, "id_valid": valid,
        "id17": id18[:17] if id18 and len(id18) == 18 and id18[:17].isdigit() else None,
        "id_birth_date": nz.id_birth_date(id18), "phone": nz.normalize_phone(phone), "township_code": town,
        "address_detail": nz.address_detail(addr, names.get(town) if town else None),
    }  # fmt: skip


def search(
    wh: Warehouse,
    *,
    name: str | None = None,
    birth_date: str | date | None = None,
    sex: str | None = None,
    id_no: str | None = None,
    phone: str | None = None,
    address: str | None = None,
    townships: list[dict[str, str]] | None = None,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """PDQ: persons whose identities resemble the query, best first, with match weight and probability."""
    q = _query_identity(name, birth_date, sex, id_no, phone, address, townships or [])
    conds, params = [], []
    for column, value in (("id17", q["id17"]), ("name_key", q["name_key"]), ("phone", q["phone"])):
        if value:
            conds.append(f"i.{column} = ?")
            params.append(value)
    if q["birth_date"] and q["surname"]:
        conds.append("(i.birth_date = ? AND i.surname = ?)")
        params += [q["birth_date"], q["surname"]]
    if not conds:
        return []
    cols = ", ".join(f"i.{c}" for c in IDENTITY_SCHEMA if c not in ("content_hash",))
    cands = wh.query_df(
        f"SELECT {cols}, x.empi_id FROM mpi.identity AS i JOIN mpi.xref AS x "
        f"USING (org_code, source_system, local_id) WHERE {' OR '.join(conds)} LIMIT 5000",
        params,
    )
    if cands.height == 0:
        return []
    schema = {k: v for k, v in IDENTITY_SCHEMA.items() if k != "content_hash"}
    query = pl.DataFrame([{k: q.get(k) for k in schema}], schema=schema).with_columns(pl.lit(0, pl.Int64).alias("rid"))
    cands = cands.with_columns(pl.col(c).cast(t) for c, t in schema.items()).with_row_index("rid", offset=1)
    settings = load_settings()
    con = duckdb.connect()
    try:
        con.register("l", _frame(query).to_arrow())
        con.register("r", _frame(cands.with_columns(pl.col("rid").cast(pl.Int64))).to_arrow())
        con.register("e", cands.select(pl.col("rid").cast(pl.Int64), "empi_id").to_arrow())
        scored = con.sql(
            f"SELECT e.empi_id, max({weight_sql(settings)}) AS weight FROM l, r JOIN e ON e.rid = r.rid "
            f"GROUP BY e.empi_id ORDER BY weight DESC, e.empi_id LIMIT {int(limit)}"
        ).fetchall()
    finally:
        con.close()
    out = []
    for empi, weight in scored:
        active = _resolve(wh, empi)
        record = golden(wh, active) if active else None
        prob = 1 / (1 + math.pow(2, -weight)) if weight > -1000 else 0.0
        out.append({"empi_id": active, "weight": round(weight, 3), "probability": round(prob, 6), "golden": record})
    return out
