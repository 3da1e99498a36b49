"""The persistent index on both warehouses: idempotent re-runs, incremental matching that never reassigns an
EMPI id, steward operations (merge/unmerge restore exactly, accept/reject), link stats and lookups."""

from __future__ import annotations

import polars as pl
import pytest

from mpi import lookup, steward
from mpi.link import run_mpi
from tests.mpi.county import KEY, copy_raw, pair_counts, truth
from warehouse import Warehouse

FIRST = {"12410182424085941C", "124101824253708833", "12410182486583962Q"}  # RMYY, QLWSY, FYBJY


def _snapshot(wh: Warehouse) -> dict[str, list[tuple]]:
    return {
        "person": wh.query("SELECT * FROM mpi.person ORDER BY empi_id"),
        "xref": wh.query("SELECT * FROM mpi.xref ORDER BY org_code, source_system, local_id"),
        "candidate": wh.query("SELECT * FROM mpi.candidate ORDER BY candidate_id"),
        "identity": wh.query("SELECT * FROM mpi.identity ORDER BY org_code, source_system, local_id"),
        "events": wh.query("SELECT count(*) FROM mpi.event"),
    }


def _orphans(wh: Warehouse) -> int:
    """xref rows not pointing at an active person (the CDR must never see one)."""
    return wh.count("mpi.xref AS x LEFT JOIN mpi.person AS p ON p.empi_id = x.empi_id",
                    "p.empi_id IS NULL OR p.status <> 'active'")  # fmt: skip


def test_idempotent_and_incremental(warehouse_url, county):
    source = county.config.warehouse_url
    with Warehouse(warehouse_url) as wh:
        copy_raw(source, wh, orgs=FIRST)
        first = run_mpi(wh, county.townships)
        assert first.new == first.identities > 0 and first.persons > 0
        before = _snapshot(wh)
        again = run_mpi(wh, county.townships)
        assert (again.new, again.changed, again.new_persons) == (0, 0, 0)
        assert _snapshot(wh) == before  # re-running on the same input changes nothing

        copy_raw(source, wh, orgs=None)  # the other institutions' records arrive (and the first ones again)
        second = run_mpi(wh, county.townships)
        assert second.new > 0 and second.changed == 0
        old = pl.DataFrame(before["xref"], schema=[c for c in wh.columns("mpi.xref")], orient="row")
        now = wh.query_df("SELECT * FROM mpi.xref")
        kept = old.join(now, on=KEY, suffix="_now")
        assert kept.height == old.height
        assert (kept["empi_id"] == kept["empi_id_now"]).all()  # no EMPI id silently reassigned
        assert (kept["linked_at"] == kept["linked_at_now"]).all()
        assert _orphans(wh) == 0
        xref = wh.query_df("SELECT org_code, source_system, local_id, empi_id FROM mpi.xref")
        stats = wh.query_df("SELECT * FROM mpi.link_stats")

    frame = xref.join(truth(county, source), on=KEY)
    tp, predicted, actual = pair_counts(frame, "empi_id", "person_id")
    assert tp / predicted >= 0.999 and tp / actual >= 0.99, (tp, predicted, actual)
    # new records of people already indexed joined their existing EMPI id
    old_people = frame.join(old.select(*KEY), on=KEY).select("person_id", "empi_id").unique()
    new_rows = frame.join(old.select(*KEY), on=KEY, how="anti").join(old_people, on="person_id", suffix="_old")
    assert new_rows.height > 50
    assert (new_rows["empi_id"] == new_rows["empi_id_old"]).mean() >= 0.99
    assert stats.height == xref.select("org_code", "source_system").unique().height
    assert (stats["identities"].sum()) == xref.height
    assert ((stats["link_rate"] >= 0) & (stats["link_rate"] <= 1)).all()
    assert (stats["linked"] <= stats["identities"]).all() and stats["linked"].sum() > 0


@pytest.fixture
def indexed(warehouse_url, county):
    with Warehouse(warehouse_url) as wh:
        copy_raw(county.config.warehouse_url, wh)
        run_mpi(wh, county.townships)
        yield wh


def _two_persons(wh: Warehouse) -> tuple[str, str]:
    rows = wh.query(
        "SELECT empi_id FROM mpi.xref GROUP BY empi_id HAVING count(*) >= 2 ORDER BY count(*) DESC, empi_id LIMIT 2"
    )
    return rows[0][0], rows[1][0]


def test_merge_then_unmerge_restores_exactly(indexed):
    wh = indexed
    a, b = _two_persons(wh)
    before = _snapshot(wh)
    moved = wh.count("mpi.xref", "empi_id = ?", [b])
    event = steward.merge(wh, a, b, "alice", "same person per phone call")
    assert wh.count("mpi.xref", "empi_id = ?", [b]) == 0
    assert wh.scalar("SELECT status FROM mpi.person WHERE empi_id = ?", [b]) == "retired"
    assert wh.scalar("SELECT retired_into FROM mpi.person WHERE empi_id = ?", [b]) == a
    assert len(lookup.xrefs(wh, a)) >= moved + 2
    assert lookup.golden(wh, b)["empi_id"] == a  # a retired id answers with its survivor
    assert _orphans(wh) == 0
    with pytest.raises(steward.StewardError):
        steward.merge(wh, a, b, "alice", "again")  # b is retired now

    steward.unmerge(wh, b, "bob", "different people after all")
    after = _snapshot(wh)
    assert {k: v for k, v in after.items() if k != "events"} == {k: v for k, v in before.items() if k != "events"}
    history = steward.history(wh, b)
    kinds = [(h["event_type"], h["actor"]) for h in history]
    assert ("merge", "alice") in kinds and ("split", "bob") in kinds
    assert any(h["event_id"] == event for h in history)
    with pytest.raises(steward.StewardError):
        steward.unmerge(wh, b, "bob", "nothing left to undo")


def test_accept_and_reject_candidates(indexed):
    wh = indexed
    a, b = _two_persons(wh)
    c = wh.query("SELECT empi_id FROM mpi.person WHERE empi_id NOT IN (?, ?) ORDER BY empi_id LIMIT 1", [a, b])[0][0]
    for cid, left, right in (("C1", a, b), ("C2", a, c)):
        wh.execute(
            "INSERT INTO mpi.candidate (candidate_id, left_empi_id, right_empi_id, score, status, created_at) "
            "VALUES (?, ?, ?, 5.0, 'open', TIMESTAMP '2026-11-01 00:00:00')",
            [cid, left, right],
        )
    before = _snapshot(wh)
    steward.reject(wh, "C2", "carol", "twins")
    assert wh.scalar("SELECT status FROM mpi.candidate WHERE candidate_id = 'C2'") == "rejected"
    with pytest.raises(steward.StewardError):
        steward.accept(wh, "C2", "carol", "")
    steward.accept(wh, "C1", "carol", "checked the ID card")
    assert wh.scalar("SELECT status FROM mpi.candidate WHERE candidate_id = 'C1'") == "accepted"
    assert wh.scalar("SELECT status FROM mpi.person WHERE empi_id = ?", [b]) == "retired"
    steward.unmerge(wh, b, "carol", "undo")
    assert wh.scalar("SELECT status FROM mpi.candidate WHERE candidate_id = 'C1'") == "open"
    assert _snapshot(wh)["xref"] == before["xref"]
    assert run_mpi(wh, []).new == 0  # a later run does not re-propose or undo steward decisions


def test_lookups(indexed):
    wh = indexed
    org, system, local, empi = wh.query(
        "SELECT x.org_code, x.source_system, x.local_id, x.empi_id FROM mpi.xref AS x "
        "JOIN mpi.person AS p ON p.empi_id = x.empi_id WHERE x.source_system = 'HIS-A' AND p.id_no IS NOT NULL "
        "ORDER BY 1, 2, 3 LIMIT 1"
    )[0]
    assert lookup.empi_for(wh, system, local, org) == empi
    assert lookup.empi_for(wh, system, "NO-SUCH-ID", org) is None
    assert (org, system, local) in {(x["org_code"], x["source_system"], x["local_id"]) for x in lookup.xrefs(wh, empi)}
    person = lookup.golden(wh, empi)
    typo = person["name"][0] + "某" + person["name"][2:] if len(person["name"]) > 2 else person["name"]
    hits = lookup.search(wh, name=typo, birth_date=str(person["birth_date"]), sex=person["sex_code"],
                         phone=person["phone"])  # fmt: skip
    assert hits and hits[0]["empi_id"] == empi
    assert hits == sorted(hits, key=lambda h: -h["weight"])
    by_id = lookup.search(wh, id_no=person["id_no"])
    assert by_id[0]["empi_id"] == empi and by_id[0]["probability"] > 0.5


def test_read_only_lookups_answer_from_a_snapshot_that_follows_the_index(tmp_path, county):
    """Read-only DuckDB lookups (the serving case) use the in-process snapshot: same answers as the SQL path, and
    a later steward merge is seen by the next read-only connection."""
    url = f"duckdb:///{tmp_path / 'ro' / 'hutong.duckdb'}"
    with Warehouse(url) as wh:
        copy_raw(county.config.warehouse_url, wh)
        run_mpi(wh, county.townships)
        keys = wh.query("SELECT org_code, source_system, local_id FROM mpi.xref ORDER BY 1, 2, 3")[::25]
        a, b = _two_persons(wh)
        moved = wh.query("SELECT org_code, source_system, local_id FROM mpi.xref WHERE empi_id = ?", [b])
        person = lookup.golden(wh, a)
        expected = {k: lookup.empi_for(wh, k[1], k[2], k[0]) for k in keys}
        goldens = {e: lookup.golden(wh, e) for e in set(expected.values())}
        hits = lookup.search(wh, name=person["name"], birth_date=str(person["birth_date"]), phone=person["phone"])
    with Warehouse(url, read_only=True) as ro:
        assert lookup._cached(ro, "xref", lookup._build_xref) is not None
        assert {k: lookup.empi_for(ro, k[1], k[2], k[0]) for k in keys} == expected
        assert {e: lookup.golden(ro, e) for e in goldens} == goldens
        assert (
            lookup.search(ro, name=person["name"], birth_date=str(person["birth_date"]), phone=person["phone"]) == hits
        )
        assert lookup.empi_for(ro, moved[0][1], "NO-SUCH-ID", moved[0][0]) is None
    with Warehouse(url) as wh:
        steward.merge(wh, a, b, "alice", "same person")
    with Warehouse(url, read_only=True) as ro:
        assert {lookup.empi_for(ro, s, local, org) for org, s, local in moved} == {a}
        assert lookup.golden(ro, b)["empi_id"] == a
