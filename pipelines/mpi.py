"""Dagster asset for the master patient index: runs after the raw identity tables land, before dbt.

No `from __future__ import annotations` here: Dagster inspects the real annotation types.
"""

from typing import Any

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    MaterializeResult,
    asset,
)

MPI_KEY = AssetKey(["mpi", "xref"])
CHECK = "link_rate_and_review_backlog"
IDENTITY_TABLES = ("his_patient", "lis_message", "pacs_study", "pacs_report", "emr_document", "ph_health_record",
                   "ph_hypertension_followup", "ph_diabetes_followup", "ph_elderly_checkup")  # fmt: skip


def mpi_asset(raw_keys: list[AssetKey]) -> Any:
    """The MPI asset (mpi.xref and the rest of the mpi schema) downstream of the raw identity tables."""
    deps = [k for k in raw_keys if k.path[-1] in IDENTITY_TABLES]

    @asset(
        key=MPI_KEY,
        deps=deps,
        group_name="mpi",
        description="EMPI ids: identities matched across institutions (mpi.person/xref/candidate/event).",
        required_resource_keys={"hutong"},
        check_specs=[AssetCheckSpec(CHECK, asset=MPI_KEY, description="Link rate and review backlog per institution")],
    )
    def mpi_xref(context: AssetExecutionContext) -> MaterializeResult:
        from hutong.stages import warehouse
        from mpi.link import mpi_link

        cfg = context.resources.hutong.load()
        result = mpi_link(cfg)
        with warehouse(cfg, read_only=True) as wh:
            stats = wh.query_dicts(
                "SELECT org_code, sum(identities) AS identities, sum(linked) AS linked, "
                "max(open_candidates) AS open_candidates FROM mpi.link_stats GROUP BY org_code ORDER BY org_code"
            )
        per_org = {
            s["org_code"]: {
                "identities": int(s["identities"]),
                "link_rate": round(int(s["linked"]) / int(s["identities"]), 4) if s["identities"] else 0.0,
                "open_candidates": int(s["open_candidates"] or 0),
            }
            for s in stats
        }
        backlog = sum(v["open_candidates"] for v in per_org.values())
        check = AssetCheckResult(
            check_name=CHECK,
            passed=backlog == 0,
            severity=AssetCheckSeverity.WARN,
            metadata={"review_backlog": backlog, "per_institution": per_org},
        )
        return MaterializeResult(
            metadata={
                "identities": result.identities,
                "new": result.new,
                "changed": result.changed,
                "new_persons": result.new_persons,
                "persons": result.persons,
                "new_candidates": result.candidates,
            },
            check_results=[check],
        )

    return mpi_xref
