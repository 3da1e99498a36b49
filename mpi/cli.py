"""`hutong mpi …`: run the index, PIX/PDQ lookups and data-steward operations (PII masked unless --unmask)."""

from __future__ import annotations

import getpass
import json
from datetime import date, datetime
from typing import Any

import click

from hutong.stages import warehouse
from mpi import lookup, steward

PII = {"name", "id_no", "phone", "address"}


def _mask(field: str, value: Any) -> Any:
    """Display masking (打码): name 张*, id 410182********1234, phone 138****5678, address up to the township."""
    if value is None or field not in PII:
        return value
    text = str(value)
    if field == "name":
        return text[:1] + "*" * max(len(text) - 1, 1)
    if field == "id_no":
        return text[:6] + "*" * max(len(text) - 10, 0) + text[-4:]
    if field == "phone":
        return text[:3] + "****" + text[-4:] if len(text) >= 7 else "****"
    for marker in ("镇", "乡", "街道"):
        if marker in text:
            return text[: text.index(marker) + len(marker)] + "***"
    return text[:6] + "***"


def _show(obj: Any, unmask: bool) -> None:
    def clean(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: clean(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, date | datetime):
            return value.isoformat()
        return value if unmask else _mask(key, value)

    click.echo(json.dumps(clean(obj), ensure_ascii=False, indent=2))


def _config(ctx: click.Context) -> Any:
    return ctx.find_root().obj.config


def _actor(actor: str | None) -> str:
    return actor or getpass.getuser()


unmask_option = click.option("--unmask", is_flag=True, help="Show names, ID numbers, phones, addresses in clear.")
actor_option = click.option("--actor", default=None, help="Who decides (default: the OS user).")


@click.group("mpi")
def mpi() -> None:
    """Master patient index: EMPI ids across institutions, review, merge/unmerge, PIX/PDQ lookups."""


@mpi.command("run")
@click.pass_context
def run_cmd(ctx: click.Context) -> None:
    """Match new and changed identities in raw against the index (incremental; re-runs change nothing)."""
    from mpi.link import mpi_link

    mpi_link(_config(ctx), progress=lambda m: click.echo(f"mpi: {m}"))


@mpi.command("train")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Trained settings file.")
@click.option("--max-pairs", default=1e6, show_default=True, help="Random pairs for the u estimate.")
@click.pass_context
def train_cmd(ctx: click.Context, out_path: str, max_pairs: float) -> None:
    """Re-estimate m/u of the matching settings with Splink (EM) on the indexed identities; use the result with
    HUTONG_MPI_SETTINGS=OUT."""
    import polars as pl
    import yaml

    from mpi.identities import IDENTITY_COLUMNS
    from mpi.match import load_settings
    from mpi.train import train

    with warehouse(_config(ctx), read_only=True) as wh:
        frame = wh.query_df(f"SELECT {', '.join(IDENTITY_COLUMNS)} FROM mpi.identity ORDER BY 1, 2, 3")
    if frame.height < 100:
        raise click.ClickException("run `hutong mpi run` on some data first (too few identities to train on)")
    frame = frame.with_row_index("rid").with_columns(pl.col("rid").cast(pl.Int64))
    trained = train(frame, load_settings(), max_pairs=max_pairs)
    with open(out_path, "w", encoding="utf-8") as fh:
        fh.write("# m/u re-estimated by `hutong mpi train` (Splink EM); levels and thresholds as shipped.\n")
        yaml.safe_dump(trained, fh, allow_unicode=True, sort_keys=False)
    click.echo(f"trained settings written to {out_path} (use with HUTONG_MPI_SETTINGS={out_path})")


@mpi.command("lookup")
@click.argument("source_system")
@click.argument("local_id")
@click.option("--org", "org_code", default=None, help="Institution org code (needed when the id is ambiguous).")
@click.pass_context
def lookup_cmd(ctx: click.Context, source_system: str, local_id: str, org_code: str | None) -> None:
    """PIX: the EMPI id of SOURCE_SYSTEM LOCAL_ID."""
    with warehouse(_config(ctx), read_only=True) as wh:
        empi = lookup.empi_for(wh, source_system, local_id, org_code)
    if empi is None:
        raise click.ClickException(f"no EMPI id for {source_system}/{local_id}")
    click.echo(empi)


@mpi.command("xref")
@click.argument("empi_id")
@click.pass_context
def xref_cmd(ctx: click.Context, empi_id: str) -> None:
    """PIX: every (institution, system, local id) of EMPI_ID."""
    with warehouse(_config(ctx), read_only=True) as wh:
        _show(lookup.xrefs(wh, empi_id), True)


@mpi.command("search")
@click.option("--name")
@click.option("--birth-date")
@click.option("--sex")
@click.option("--id-no")
@click.option("--phone")
@click.option("--address")
@click.option("--limit", default=10, show_default=True)
@unmask_option
@click.pass_context
def search_cmd(ctx: click.Context, limit: int, unmask: bool, **demographics: Any) -> None:
    """PDQ: persons resembling the given demographics, ranked by match weight."""
    config = _config(ctx)
    townships = list((config.county or {}).get("townships", []))
    with warehouse(config, read_only=True) as wh:
        _show(lookup.search(wh, townships=townships, limit=limit, **demographics), unmask)


@mpi.command("golden")
@click.argument("empi_id")
@unmask_option
@click.pass_context
def golden_cmd(ctx: click.Context, empi_id: str, unmask: bool) -> None:
    """The golden record of EMPI_ID."""
    with warehouse(_config(ctx), read_only=True) as wh:
        record = lookup.golden(wh, empi_id)
    if record is None:
        raise click.ClickException(f"unknown EMPI id {empi_id}")
    _show(record, unmask)


@mpi.command("candidates")
@click.option("--status", default="open", show_default=True, type=click.Choice(["open", "accepted", "rejected"]))
@click.option("--limit", default=50, show_default=True)
@click.pass_context
def candidates_cmd(ctx: click.Context, status: str, limit: int) -> None:
    """The review queue: pairs of EMPI ids that may be the same person."""
    with warehouse(_config(ctx), read_only=True) as wh:
        rows = wh.query_dicts(
            "SELECT candidate_id, left_empi_id, right_empi_id, score, status, created_at, decided_by, reason "
            f"FROM mpi.candidate WHERE status = ? ORDER BY score DESC, candidate_id LIMIT {int(limit)}",
            [status],
        )
    _show(rows, True)


def _steward(ctx: click.Context, op: Any, *args: Any) -> None:
    with warehouse(_config(ctx)) as wh:
        try:
            event = op(wh, *args)
        except steward.StewardError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"event {event}")


@mpi.command("accept")
@click.argument("candidate_id")
@click.option("--reason", default="", help="Why (recorded in the event history).")
@actor_option
@click.pass_context
def accept_cmd(ctx: click.Context, candidate_id: str, reason: str, actor: str | None) -> None:
    """Accept a candidate: merge its two EMPI ids."""
    _steward(ctx, steward.accept, candidate_id, _actor(actor), reason)


@mpi.command("reject")
@click.argument("candidate_id")
@click.option("--reason", required=True, help="Why (recorded in the event history).")
@actor_option
@click.pass_context
def reject_cmd(ctx: click.Context, candidate_id: str, reason: str, actor: str | None) -> None:
    """Reject a candidate: different people."""
    _steward(ctx, steward.reject, candidate_id, _actor(actor), reason)


@mpi.command("merge")
@click.argument("survivor")
@click.argument("retired")
@click.option("--reason", required=True)
@actor_option
@click.pass_context
def merge_cmd(ctx: click.Context, survivor: str, retired: str, reason: str, actor: str | None) -> None:
    """Merge RETIRED into SURVIVOR (reversible with unmerge)."""
    _steward(ctx, steward.merge, survivor, retired, _actor(actor), reason)


@mpi.command("unmerge")
@click.argument("retired")
@click.option("--reason", required=True)
@actor_option
@click.pass_context
def unmerge_cmd(ctx: click.Context, retired: str, reason: str, actor: str | None) -> None:
    """Split RETIRED out again: undo its latest merge exactly."""
    _steward(ctx, steward.unmerge, retired, _actor(actor), reason)


@mpi.command("history")
@click.argument("empi_id")
@click.pass_context
def history_cmd(ctx: click.Context, empi_id: str) -> None:
    """Events of EMPI_ID (links, merges, splits, decisions) with actor and reason."""
    with warehouse(_config(ctx), read_only=True) as wh:
        _show(steward.history(wh, empi_id), True)


@mpi.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8765, show_default=True, type=int)
@click.pass_context
def serve_cmd(ctx: click.Context, host: str, port: int) -> None:
    """Serve PIX/PDQ lookups over HTTP (read-only, PII masked): /pix, /xref/<id>, /golden/<id>, /pdq."""
    from mpi.serve import make_server

    config = _config(ctx)
    server = make_server(config.warehouse_url, list((config.county or {}).get("townships", [])), host, port)
    click.echo(f"mpi lookups on http://{host}:{server.server_port}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
