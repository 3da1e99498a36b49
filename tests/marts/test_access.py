"""Analyst access: masked views on both warehouses hold no unmasked 身份证号 or phone; on PostgreSQL an institution
role reads only its own rows (row-level security), the analyst role reads only masked views; exports are audited."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from marts.access import apply_access, drop_roles, export_query, institution_role, pii_leaks
from warehouse import Warehouse, parse_url


def _institutions(county) -> list[tuple[str, str]]:
    return [(i.org_code, i.short) for i in county.config.institutions]


def test_analyst_views_are_masked(county):
    with Warehouse(county.url) as wh:
        result = apply_access(wh, _institutions(county), role_prefix=f"t{uuid.uuid4().hex[:8]}_")
        try:
            clear_leaks = pii_leaks(wh, "cdr")
            analyst, research = pii_leaks(wh, "analyst"), pii_leaks(wh, "research")
            views = {
                r[0]
                for r in wh.query(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", ["analyst"]
                )
            }
            with_id = wh.count("cdr.cdr__patient", "id_no IS NOT NULL")
            masked = wh.query_dicts("SELECT name, id_no, phone FROM analyst.cdr__patient WHERE id_no IS NOT NULL")
            tokens, ids = wh.query(
                "SELECT count(DISTINCT r.id_no), count(DISTINCT p.id_no) FROM research.cdr__patient r "
                "JOIN cdr.cdr__patient p ON p.patient_key = r.patient_key"
            )[0]
            equal = wh.count(
                "research.cdr__patient r JOIN cdr.cdr__patient p ON p.patient_key = r.patient_key",
                "r.id_no = p.id_no OR r.name = p.name",
            )
        finally:
            drop_roles(wh, result.roles)
    assert {v for v, _, _ in clear_leaks} >= {"cdr__patient"}  # the scan finds identifiers where they are clear
    assert analyst == [] and research == []
    assert {"cdr__patient", "cdr__encounter"} <= views and result.views["analyst"] == len(views)
    assert len(masked) == with_id > 0
    assert all("*" in m["id_no"] and set(m["name"][1:]) <= {"*"} for m in masked)
    assert all(m["phone"] is None or "****" in m["phone"] for m in masked)
    assert tokens == ids and equal == 0  # researchers get one stable pseudonym per person, never the value


@pytest.mark.parametrize("county", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_institution_role_reads_only_its_own_rows(county):
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    institutions = _institutions(county)
    (own, own_short), (other, _) = institutions[0], institutions[1]
    login = f"{prefix}rmyy_it"
    with Warehouse(county.url) as wh:
        result = apply_access(wh, institutions, role_prefix=prefix)
        wh.execute(f'CREATE ROLE "{login}" LOGIN IN ROLE "{institution_role(own_short, prefix + "hutong_org_")}"')
        expected = wh.count("cdr.cdr__encounter", "org_code = ?", [own])
        other_key = wh.scalar("SELECT min(encounter_key) FROM cdr.cdr__encounter WHERE org_code = ?", [other])
        try:
            target = parse_url(county.url)
            with psycopg.connect(host=target.host, port=target.port, user=login, dbname=target.database,
                                 autocommit=True) as conn:  # fmt: skip  # a hospital IT user, member of the role
                orgs = conn.execute("SELECT DISTINCT org_code FROM cdr.cdr__encounter").fetchall()
                seen = conn.execute("SELECT count(*) FROM cdr.cdr__encounter").fetchone()[0]
                stolen = conn.execute(
                    "SELECT count(*) FROM cdr.cdr__encounter WHERE encounter_key = %s", [other_key]
                ).fetchone()[0]
                patients = conn.execute("SELECT DISTINCT org_code FROM cdr.cdr__patient").fetchall()
                problems = conn.execute("SELECT DISTINCT org_code FROM quality.problem_record").fetchall()
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT count(*) FROM analyst.cdr__patient")
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute("SELECT count(*) FROM raw.his_patient")
            analyst = prefix + "hutong_analyst"
            with wh.transaction():
                wh.execute(f'SET LOCAL ROLE "{analyst}"')
                all_orgs = {r[0] for r in wh.query("SELECT DISTINCT org_code FROM analyst.cdr__encounter")}
            with pytest.raises(psycopg.errors.InsufficientPrivilege), wh.transaction():
                wh.execute(f'SET LOCAL ROLE "{analyst}"')
                wh.query("SELECT id_no FROM cdr.cdr__patient")
        finally:
            drop_roles(wh, [login, *result.roles])
    assert orgs == [(own,)] and seen == expected and stolen == 0
    assert patients == [(own,)] and problems in ([], [(own,)])
    assert all_orgs == {i for i, _ in institutions} and result.rls_tables >= 4


def test_analyst_export_is_confined_and_audited(county, tmp_path):
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    with Warehouse(county.url) as wh:
        result = apply_access(wh, _institutions(county), role_prefix=prefix)
        try:
            count, digest = export_query(
                wh,
                "SELECT org_code, name, id_no FROM analyst.cdr__patient ORDER BY patient_key",
                "analyst",
                tmp_path / "patients.csv",
                who="analyst:zhang",
                purpose="建档率核查",
                role_prefix=prefix,
            )
            with pytest.raises(PermissionError):
                export_query(
                    wh, 'SELECT id_no FROM "cdr".cdr__patient', "analyst", tmp_path / "x.csv", role_prefix=prefix
                )
            audit = wh.query_dicts("SELECT * FROM feeds.export_audit WHERE kind = 'analyst_export'")
        finally:
            if wh.dialect == "postgres":
                drop_roles(wh, result.roles)
    text = (tmp_path / "patients.csv").read_text(encoding="utf-8-sig")
    assert count == county_patients(county) and text.count("\n") == count + 1 and "********" in text
    assert len(audit) == 1 and audit[0]["actor"] == "analyst:zhang" and audit[0]["record_count"] == count
    assert audit[0]["checksum"] == f"sha256:{digest}" and audit[0]["detail"] == "建档率核查"


def county_patients(county) -> int:
    with Warehouse(county.url) as wh:
        return wh.count("cdr.cdr__patient")
