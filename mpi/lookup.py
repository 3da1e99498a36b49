"""Lookups on the index, modelled on IHE PIX (cross-references) and PDQ (demographic query).

- `empi_for(system, local_id)`: the active EMPI id of one source identity (PIX query).
- `xrefs(empi)`: every (org_code, source_system, local_id) of a person (PIX cross-reference list).
- `search(...)`: fuzzy demographic search, candidates ranked by the same Fellegi–Sunter weights (PDQ).
- `golden(empi)`: the golden record (a retired id answers with the person it was merged into).

On a read-only DuckDB connection (the serving case) PIX answers from an in-process snapshot of the cross-reference
keyed by (system, local id) — a sorted key column searched by bisection — and the retired → survivor map; the
snapshot belongs to one database file and is rebuilt when the file or its WAL changes (a writer committed).
DuckDB answers equality filters by scanning, so this keeps PIX at microseconds instead of a table scan per query.
PostgreSQL answers through its indexes (`LOOKUP_INDEXES`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from mpi import normalize as nz
from mpi.identities import IDENTITY_SCHEMA
from mpi.match import _frame, load_settings, weight_sql
from warehouse import Warehouse

_PDQ_SCHEMA = {k: v for k, v in IDENTITY_SCHEMA.items() if k != "content_hash"}
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


_SEP = "\x1f"
# PDQ blocking keys: (name, SQL expression over mpi.identity `i`); a query's candidates share at least one
BLOCKING_KEYS = (
    ("id17", "i.id17"),
    ("name_key", "i.name_key"),
    ("phone", "i.phone"),
    ("birth_surname", f"CAST(i.birth_date AS VARCHAR) || chr({ord(_SEP)}) || i.surname"),
)


def _bisect(keys: pl.Series, key: str) -> tuple[int, int]:
    """[lo, hi) of `key` in the sorted series `keys`."""
    return int(keys.search_sorted(key, side="left")), int(keys.search_sorted(key, side="right"))


@dataclass(frozen=True)
class _Xref:
    """The xref of one DuckDB file: keys `system␟local_id` sorted, with their org code and EMPI id; retired ids."""

    keys: pl.Series
    orgs: pl.Series
    empis: pl.Series
    retired: dict[str, str | None]

    def find(self, source_system: str, local_id: str) -> list[tuple[str, str]]:
        """(org_code, empi_id) of every identity with this system and local id."""
        lo, hi = _bisect(self.keys, f"{source_system}{_SEP}{local_id}")
        return list(zip(self.orgs[lo:hi].to_list(), self.empis[lo:hi].to_list(), strict=True))


@dataclass(frozen=True)
class _Blocking:
    """Identities (matching columns + EMPI id) of one DuckDB file and, per blocking key, (sorted keys, rows)."""

    frame: pl.DataFrame
    index: dict[str, tuple[pl.Series, pl.Series]]

    def rows(self, key: str, value: str) -> pl.Series:
        keys, rows = self.index[key]
        lo, hi = _bisect(keys, value)
        return rows[lo:hi]


_CACHE: dict[tuple[str, str], tuple[tuple[int, ...], Any]] = {}
_CACHE_LOCK = threading.Lock()


def _file_signature(path: Path) -> tuple[int, ...]:
    """mtime and size of the database file and its WAL: any committed write changes one of them."""
    out: list[int] = []
    for f in (path, path.with_name(path.name + ".wal")):
        st = f.stat() if f.exists() else None
        out += [st.st_mtime_ns, st.st_size] if st else [0, -1]
    return tuple(out)


def _cached(wh: Warehouse, kind: str, build: Any) -> Any:
    """`build(wh)` once per DuckDB file state, on read-only DuckDB connections only (None elsewhere: a writable
    connection may hold uncommitted changes; PostgreSQL answers from its indexes)."""
    if wh.dialect != "duckdb" or not wh.read_only or wh.target.path is None:
        return None
    path = str(wh.target.path.resolve())
    signature = _file_signature(Path(path))
    with _CACHE_LOCK:
        hit = _CACHE.get((path, kind))
        if hit is None or hit[0] != signature:
            for other in [k for k in _CACHE if k[0] == path and k[1] != kind and _CACHE[k][0] != signature]:
                del _CACHE[other]
            hit = _CACHE[(path, kind)] = (signature, build(wh))
    return hit[1]


def _build_xref(wh: Warehouse) -> _Xref:
    xref = wh.query_df(
        f"SELECT source_system || chr({ord(_SEP)}) || local_id AS k, org_code, empi_id FROM mpi.xref"
    ).sort("k", "org_code")  # polars' byte order, the order search_sorted assumes
    retired = dict(wh.query("SELECT empi_id, retired_into FROM mpi.person WHERE status <> 'active'"))
    return _Xref(xref["k"], xref["org_code"], xref["empi_id"], retired)


def _build_blocking(wh: Warehouse) -> _Blocking:
    cols = ", ".join(f"i.{c}" for c in _PDQ_SCHEMA)
    keys = ", ".join(f"{expr} AS _k_{name}" for name, expr in BLOCKING_KEYS)
    frame = wh.query_df(
        f"SELECT {cols}, x.empi_id, {keys} FROM mpi.identity AS i JOIN mpi.xref AS x "
        "USING (org_code, source_system, local_id) ORDER BY i.org_code, i.source_system, i.local_id"
    ).with_columns(pl.col(c).cast(t) for c, t in _PDQ_SCHEMA.items())
    index = {}
    for name, _ in BLOCKING_KEYS:
        col = frame[f"_k_{name}"]
        order = col.arg_sort(nulls_last=True)
        index[name] = (col.gather(order), order)
    return _Blocking(frame.drop([f"_k_{n}" for n, _ in BLOCKING_KEYS]), index)


def _resolve(wh: Warehouse, empi: str | None) -> str | None:
    """Follow retired → survivor links to the active EMPI id."""
    snap: _Xref | None = _cached(wh, "xref", _build_xref)
    seen = set()
    while empi and empi not in seen:
        seen.add(empi)
        if snap is not None:
            if empi not in snap.retired:
                return empi
            empi = snap.retired[empi]
            continue
        row = wh.query("SELECT status, retired_into FROM mpi.person WHERE empi_id = ?", [empi])
        if not row or row[0][0] == "active":
            return empi
        empi = row[0][1]
    return empi


def empi_for(wh: Warehouse, source_system: str, local_id: str, org_code: str | None = None) -> str | None:
    """PIX query: the EMPI id of (source_system, local_id), within one institution when `org_code` is given.

    Without `org_code` the local id must be unambiguous across institutions (else ValueError)."""
    snap: _Xref | None = _cached(wh, "xref", _build_xref)
    if snap is not None:
        rows = sorted({(e,) for o, e in snap.find(source_system, local_id) if not org_code or o == org_code})
    else:
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
    active = _resolve(wh, empi)
    return _persons(wh, [active]).get(active) if active else None


def _persons(wh: Warehouse, empis: list[str]) -> dict[str, dict[str, Any]]:
    """mpi.person rows by EMPI id (from the in-process snapshot on read-only DuckDB)."""
    if not empis:
        return {}
    snap: pl.DataFrame | None = _cached(wh, "person", lambda w: w.query_df("SELECT * FROM mpi.person").sort("empi_id"))
    if snap is None:
        marks = ", ".join("?" for _ in empis)
        return {r["empi_id"]: r for r in wh.query_dicts(f"SELECT * FROM mpi.person WHERE empi_id IN ({marks})", empis)}
    out = {}
    for empi in empis:
        lo, hi = _bisect(snap["empi_id"], empi)
        if hi > lo:
            out[empi] = snap.row(lo, named=True)
    return out


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
    values = {"id17": q["id17"], "name_key": q["name_key"], "phone": q["phone"], "birth_surname": None}
    if q["birth_date"] and q["surname"]:
        values["birth_surname"] = f"{q['birth_date'].isoformat()}{_SEP}{q['surname']}"
    wanted = {k: v for k, v in values.items() if v}
    if not wanted:
        return []
    schema = _PDQ_SCHEMA
    # candidates: identities sharing a blocking key with the query (at most 5,000, in key order)
    blocking: _Blocking | None = _cached(wh, "blocking", _build_blocking)
    if blocking is not None:
        rows = pl.concat([blocking.rows(k, v) for k, v in wanted.items()]).unique().sort().head(5000)
        cands = blocking.frame[rows]
    else:
        exprs = dict(BLOCKING_KEYS)
        where = " OR ".join(f"{exprs[k]} = ?" for k in wanted)
        cols = ", ".join(f"i.{c}" for c in schema)
        cands = wh.query_df(
            f"WITH i AS (SELECT {cols} FROM mpi.identity AS i WHERE {where} "
            "ORDER BY i.org_code, i.source_system, i.local_id LIMIT 5000) "
            "SELECT i.*, x.empi_id FROM i JOIN mpi.xref AS x USING (org_code, source_system, local_id)",
            list(wanted.values()),
        )
    if cands.height == 0:
        return []
    query = pl.DataFrame([{k: q.get(k) for k in schema}], schema=schema).with_columns(pl.lit(0, pl.Int64).alias("rid"))
    cands = cands.with_columns(pl.col(c).cast(t) for c, t in schema.items()).with_row_index("rid", offset=1)
    settings = load_settings()
    with _SCORER_LOCK:
        con = _scorer()
        con.register("l", _frame(query).to_arrow())
        con.register("r", _frame(cands.with_columns(pl.col("rid").cast(pl.Int64))).to_arrow())
        con.register("e", cands.select(pl.col("rid").cast(pl.Int64), "empi_id").to_arrow())
        try:
            scored = con.execute(
                f"SELECT e.empi_id, max({weight_sql(settings)}) AS weight FROM l, r JOIN e ON e.rid = r.rid "
                f"GROUP BY e.empi_id ORDER BY weight DESC, e.empi_id LIMIT {int(limit)}"
            ).fetchall()
        finally:
            for view in ("l", "r", "e"):
                con.unregister(view)
    active = {empi: _resolve(wh, empi) for empi, _ in scored}
    records = _persons(wh, sorted({a for a in active.values() if a}))
    out = []
    for empi, weight in scored:
        prob = 1 / (1 + math.pow(2, -weight)) if weight > -1000 else 0.0
        record = records.get(active[empi]) if active[empi] else None
        out.append({"empi_id": active[empi], "weight": round(weight, 3), "probability": round(prob, 6),
                    "golden": record})  # fmt: skip
    return out


_SCORER_LOCK = threading.Lock()


@cache
def _scorer() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB engine for scoring PDQ candidates (opening one per query costs more than the query)."""
    return duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
