"""Data-steward operations on the index: accept / reject a candidate, merge, unmerge (split).

Each is one transaction and one mpi.event row with actor and reason. A merge records, in the event's detail,
the person, xref and candidate rows it changed, so the matching unmerge restores them exactly.
"""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from mpi.golden import golden_records
from mpi.store import new_event_id, now, replace_rows
from warehouse import Warehouse

PERSON_COLS = ("empi_id", "status", "retired_into", "name", "sex_code", "birth_date", "id_type", "id_no", "phone",
               "address", "created_at", "updated_at")  # fmt: skip
XREF_COLS = ("org_code", "source_system", "local_id", "empi_id", "link_method", "link_score", "linked_at")
CAND_COLS = ("candidate_id", "left_empi_id", "right_empi_id", "score", "status", "created_at", "decided_by",
             "decided_at", "reason")  # fmt: skip


class StewardError(ValueError):
    """A steward operation that cannot apply (unknown or inactive id, nothing to undo)."""


def _rows(wh: Warehouse, table: str, cols: tuple[str, ...], where: str, params: list[Any]) -> list[dict[str, Any]]:
    return wh.query_dicts(f"SELECT {', '.join(cols)} FROM {table} WHERE {where} ORDER BY {cols[0]}", params)


def _jsonable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (None if v is None else v if isinstance(v, int | float | str) else str(v)) for k, v in r.items()}
            for r in rows]  # fmt: skip


def _event(wh: Warehouse, event_type: str, empi: str | None, other: str | None, actor: str, reason: str,
           detail: dict[str, Any] | None = None, key: tuple[str, str, str] | None = None) -> str:  # fmt: skip
    event_id = new_event_id()
    org, system, local = key or (None, None, None)
    wh.execute(
        "INSERT INTO mpi.event (event_id, event_type, empi_id, other_empi_id, org_code, source_system, local_id, "
        'actor, reason, "at", detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
        [
            event_id,
            event_type,
            empi,
            other,
            org,
            system,
            local,
            actor,
            reason,
            now(),
            json.dumps(detail, ensure_ascii=False) if detail is not None else None,
        ],
    )
    return event_id


def _active(wh: Warehouse, empi: str) -> None:
    status = wh.scalar("SELECT status FROM mpi.person WHERE empi_id = ?", [empi])
    if status != "active":
        raise StewardError(f"EMPI {empi} is {'unknown' if status is None else status}, not active")


def _refresh_golden(wh: Warehouse, empi: str) -> None:
    """Recompute one person's golden record from its identities (keeps created_at)."""
    members = wh.query_df(
        "SELECT i.*, x.empi_id FROM mpi.identity AS i JOIN mpi.xref AS x USING (org_code, source_system, local_id) "
        "WHERE x.empi_id = ?",
        [empi],
    )
    if members.height == 0:
        return
    created = wh.scalar("SELECT created_at FROM mpi.person WHERE empi_id = ?", [empi])
    person = golden_records(members, now()).with_columns(pl.lit(created).alias("created_at"))
    replace_rows(wh, "mpi.person", person, ["empi_id"])


def merge(wh: Warehouse, survivor: str, retired: str, actor: str, reason: str) -> str:
    """Move every identity of `retired` to `survivor`; `retired` becomes status retired. Returns the event id."""
    if survivor == retired:
        raise StewardError("cannot merge an EMPI id into itself")
    with wh.transaction():
        _active(wh, survivor)
        _active(wh, retired)
        pair = [survivor, retired, retired, survivor]
        before = {
            "persons": _jsonable(_rows(wh, "mpi.person", PERSON_COLS, "empi_id IN (?, ?)", [survivor, retired])),
            "xref": _jsonable(_rows(wh, "mpi.xref", XREF_COLS, "empi_id = ?", [retired])),
            "candidates": _jsonable(
                _rows(
                    wh,
                    "mpi.candidate",
                    CAND_COLS,
                    "(left_empi_id = ? AND right_empi_id = ?) OR (left_empi_id = ? AND right_empi_id = ?)",
                    pair,
                )
            ),
        }
        at = now()
        wh.execute(
            "UPDATE mpi.xref SET empi_id = ?, link_method = 'steward', link_score = NULL, linked_at = ? "
            "WHERE empi_id = ?",
            [survivor, at, retired],
        )
        wh.execute(
            "UPDATE mpi.person SET status = 'retired', retired_into = ?, updated_at = ? WHERE empi_id = ?",
            [survivor, at, retired],
        )
        wh.execute(
            "UPDATE mpi.candidate SET status = 'accepted', decided_by = ?, decided_at = ?, reason = ? "
            "WHERE status = 'open' AND ((left_empi_id = ? AND right_empi_id = ?) OR "
            "(left_empi_id = ? AND right_empi_id = ?))",
            [actor, at, reason, *pair],
        )
        _refresh_golden(wh, survivor)
        return _event(wh, "merge", survivor, retired, actor, reason, before)


def unmerge(wh: Warehouse, retired: str, actor: str, reason: str) -> str:
    """Undo the latest merge of `retired` (split it out again): person, xref and candidate rows as before."""
    with wh.transaction():
        merges = wh.query(
            "SELECT event_id, empi_id, detail FROM mpi.event WHERE event_type = 'merge' AND other_empi_id = ? "
            'ORDER BY "at" DESC',
            [retired],
        )
        undone = {
            json.loads(d).get("undoes")
            for (d,) in wh.query("SELECT detail FROM mpi.event WHERE event_type = 'split' AND empi_id = ?", [retired])
            if d
        }
        todo = [m for m in merges if m[0] not in undone]
        if not todo:
            raise StewardError(f"EMPI {retired} has no merge to undo")
        merge_id, survivor, detail = todo[0]
        state = json.loads(detail)
        if wh.scalar("SELECT status FROM mpi.person WHERE empi_id = ?", [survivor]) != "active":
            raise StewardError(f"survivor {survivor} is no longer active; unmerge its own merge first")
        _restore(wh, "mpi.person", PERSON_COLS, state["persons"], ["empi_id"])
        _restore(wh, "mpi.xref", XREF_COLS, state["xref"], ["org_code", "source_system", "local_id"])
        _restore(wh, "mpi.candidate", CAND_COLS, state["candidates"], ["candidate_id"])
        return _event(wh, "split", retired, survivor, actor, reason, {"undoes": merge_id})


def _restore(wh: Warehouse, table: str, cols: tuple[str, ...], rows: list[dict[str, Any]], key: list[str]) -> None:
    for row in rows:
        wh.execute(f"DELETE FROM {table} WHERE " + " AND ".join(f"{k} = ?" for k in key), [row[k] for k in key])
        wh.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [row[c] for c in cols],
        )


def _candidate(wh: Warehouse, candidate_id: str) -> dict[str, Any]:
    rows = _rows(wh, "mpi.candidate", CAND_COLS, "candidate_id = ?", [candidate_id])
    if not rows:
        raise StewardError(f"unknown candidate {candidate_id}")
    if rows[0]["status"] != "open":
        raise StewardError(f"candidate {candidate_id} is already {rows[0]['status']}")
    return rows[0]


def accept(wh: Warehouse, candidate_id: str, actor: str, reason: str) -> str:
    """Accept a review candidate: merge its right EMPI id into its left one (undo with unmerge)."""
    cand = _candidate(wh, candidate_id)
    return merge(wh, cand["left_empi_id"], cand["right_empi_id"], actor, reason or f"accepted {candidate_id}")


def reject(wh: Warehouse, candidate_id: str, actor: str, reason: str) -> str:
    """Reject a review candidate: the two EMPI ids are different people (never proposed again)."""
    with wh.transaction():
        cand = _candidate(wh, candidate_id)
        wh.execute(
            "UPDATE mpi.candidate SET status = 'rejected', decided_by = ?, decided_at = ?, reason = ? "
            "WHERE candidate_id = ?",
            [actor, now(), reason, candidate_id],
        )
        return _event(wh, "reject", cand["left_empi_id"], cand["right_empi_id"], actor, reason,
                      {"candidates": _jsonable([cand])})  # fmt: skip


def history(wh: Warehouse, empi: str) -> list[dict[str, Any]]:
    """Every event naming the EMPI id, oldest first."""
    return wh.query_dicts(
        'SELECT event_id, event_type, empi_id, other_empi_id, org_code, source_system, local_id, actor, reason, "at" '
        'FROM mpi.event WHERE empi_id = ? OR other_empi_id = ? ORDER BY "at", event_type, event_id',
        [empi, empi],
    )
