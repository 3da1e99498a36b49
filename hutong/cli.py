"""`hutong` command line: one subcommand per stage, plus `run` (all stages) and `demo`."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import click

from hutong import stages
from hutong.config import SOURCE_KINDS, ConfigError, PlatformConfig, load_config
from hutong.dbt_runner import DbtError

EXPECTED_ERRORS: tuple[type[Exception], ...] = (ConfigError, DbtError, RuntimeError, ValueError, OSError)


def _expected_errors() -> tuple[type[Exception], ...]:
    from connectors.ledger import SourceError
    from quality.catalog import CatalogError
    from warehouse import WarehouseError

    return (*EXPECTED_ERRORS, WarehouseError, SourceError, CatalogError)


def _progress(prefix: str) -> Callable[[str], None]:
    """Progress lines: overwritten in place on a terminal, one per line otherwise."""
    tty = sys.stderr.isatty()

    def show(message: str) -> None:
        if tty:
            click.echo(f"\r\033[K{prefix} {message[:150]}", nl=False, err=True)
        else:
            click.echo(f"{prefix} {message}", err=True)

    return show


def _done(message: str) -> None:
    if sys.stderr.isatty():
        click.echo("\r\033[K", nl=False, err=True)
    click.echo(message)


class Context:
    def __init__(self, config_path: str | None) -> None:
        self.config_path = config_path
        self._config: PlatformConfig | None = None

    @property
    def config(self) -> PlatformConfig:
        if self._config is None:
            self._config = load_config(self.config_path)
        return self._config


def _day(value: str | None, config: PlatformConfig) -> date:
    if not value:
        return stages.today(config)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from exc


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", envvar="HUTONG_CONFIG", help="Platform file (default: config/county.yaml).")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Hutong (互通): regional health-information interoperability platform.

    Stages, in order: synth → ingest → transform → quality → export. `run` does them all; `demo` does them all on
    the synthetic county through Dagster and says where to look.
    """
    ctx.obj = Context(config_path)


@cli.command()
@click.pass_obj
def init(obj: Context) -> None:
    """Create the warehouse schemas and core tables."""
    stages.init(obj.config)
    _done(f"warehouse ready: {stages.warehouse(obj.config).target.display}")


@cli.command()
@click.option("--size", default=None, help="tiny / demo / medium / county (default: the config's synthetic.size).")
@click.option("--seed", type=int, default=None, help="Random seed (same seed → identical output).")
@click.option("--force", is_flag=True, help="Regenerate even if the same size and seed were generated already.")
@click.option("--next-day", is_flag=True, help="Append the next day (new, updated, cancelled rows) to the county.")
@click.pass_obj
def synth(obj: Context, size: str | None, seed: int | None, force: bool, next_day: bool) -> None:
    """Generate the synthetic county's source systems and ground truth (or its next daily increment)."""
    if next_day:
        result = stages.synth_next_day(obj.config, progress=_progress("synth"))
        new = sum(c.outpatient + c.inpatient for c in result.his.values())
        _done(f"increment {result.day}: {new} new encounters, {sum(result.updated.values())} rows changed")
        return
    settings = obj.config.synthetic or {"size": "demo", "seed": 20261124}
    size, seed = size or settings["size"], seed if seed is not None else settings["seed"]
    started = time.monotonic()
    result = stages.synth(obj.config, size, seed, force=force, progress=_progress("synth"))
    if result.skipped:
        _done(f"synthetic sources ({size}, seed {seed}) already in {result.out_dir}/sources; use --force to rebuild")
    else:
        _done(
            f"synthetic county ({size}, seed {seed}) written to {result.out_dir} in {time.monotonic() - started:.1f}s"
        )


@cli.command()
@click.option("--org", "orgs", multiple=True, help="Institution (org code or short name); repeatable. Default: all.")
@click.option("--source", "kinds", multiple=True, type=click.Choice(SOURCE_KINDS),
              help="Source kind; repeatable. Default: every configured kind.")  # fmt: skip
@click.option("--date", "day", default=None, help="Only files of this day (YYYY-MM-DD); HIS pulls ignore it.")
@click.option("--full", is_flag=True, help="Ignore HIS watermarks and re-read everything (adds nothing landed).")
@click.pass_obj
def ingest(obj: Context, orgs: tuple[str, ...], kinds: tuple[str, ...], day: str | None, full: bool) -> None:
    """Land institutions' sources (HIS, LIS, PACS, EMR, public health) in raw."""
    chosen = _day(day, obj.config) if day else None
    runs = stages.ingest(obj.config, orgs=list(orgs) or None, kinds=list(kinds) or None, day=chosen, full=full,
                         progress=_progress("ingest"))  # fmt: skip
    failed = [r for r in runs if r.error]
    by_kind: dict[str, list[Any]] = {}
    for r in runs:
        by_kind.setdefault(r.kind, []).append(r)
    _done(f"ingested {len(runs) - len(failed)}/{len(runs)} sources:")
    for kind, items in by_kind.items():
        files = sum(r.files_loaded + r.files_rejected for r in items)
        _done(
            f"  {kind:14s} {sum(r.rows_in for r in items):>9,} read  {sum(r.rows_loaded for r in items):>9,} new  "
            f"{sum(r.rows_quarantined for r in items):>6,} quarantined"
            + (f"  ({files} files)" if kind != "his" else "")
        )
    for r in failed:
        click.echo(f"  failed: {r.error}", err=True)
    if failed:
        raise SystemExit(1)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2575, show_default=True, type=int)
@click.option("--load-every", default=60.0, show_default=True, help="Seconds between landing spooled messages in raw.")
@click.pass_obj
def mllp(obj: Context, host: str, port: int, load_every: float) -> None:
    """Receive HL7 v2 over MLLP (AA only after durable storage) and land it in raw periodically."""
    from connectors.mllp import ListenerThread, listener_for

    listener = listener_for(obj.config, host, port)
    with ListenerThread(listener) as running:
        _done(f"MLLP listening on {host}:{running.port} for {len(listener.spool.folders)} institutions; Ctrl-C stops")
        try:
            while True:
                time.sleep(load_every)
                listener.spool.rotate(force=True)
                runs = stages.ingest(obj.config, kinds=["lis"])
                _done(f"received {running.received}, stored {running.stored}, landed "
                      f"{sum(r.rows_loaded for r in runs)} new messages")  # fmt: skip
        except KeyboardInterrupt:
            pass
    stages.ingest(obj.config, kinds=["lis"])
    _done(f"stopped; {listener.received} messages received, {listener.stored} stored and landed")


@cli.command()
@click.option("--select", default=None, help="dbt node selection (default: everything).")
@click.pass_obj
def transform(obj: Context, select: str | None) -> None:
    """Build the dbt models (staging → cdr) and run their tests."""
    output = stages.transform(obj.config, select=select, progress=_progress("dbt"))
    summary = [ln for ln in output.splitlines() if "Done." in ln]
    _done(f"dbt build finished: {summary[-1].split('Done.')[-1].strip() if summary else 'ok'}")


@cli.command()
@click.option("--day", default=None, help="Quality run day (YYYY-MM-DD, default today).")
@click.option("--since", default=None, help="First day of a range of daily runs ending at --day.")
@click.option("--org", "orgs", multiple=True, help="Institution (org code or short name); repeatable. Default: all.")
@click.option("--period", type=click.Choice(["day", "week", "month", "quarter", "year"]), default=None,
              help="Also print the total scores of the period containing --day.")
@click.option("--suites", is_flag=True, help="Only regenerate the Great Expectations suites (quality/suites/).")
@click.pass_obj
def quality(obj: Context, day: str | None, since: str | None, orgs: tuple[str, ...], period: str | None,
            suites: bool) -> None:  # fmt: skip
    """Run the quality rules per institution, score them (T+1) and write the reports."""
    from quality.cli import run_quality_command

    run_quality_command(obj.config, _day(day, obj.config), since, list(orgs), period, suites, _done)


@cli.command()
@click.option("--day", default=None, help="Period to export (YYYY-MM-DD, default today).")
@click.option("--feed", "feeds", multiple=True, help="Feed name (marts/feeds/*.yaml); repeatable. Default: all.")
@click.option("--org", "orgs", multiple=True, help="Institution (org code or short name); repeatable. Default: all.")
@click.pass_obj
def export(obj: Context, day: str | None, feeds: tuple[str, ...], orgs: tuple[str, ...]) -> None:
    """Run the export feeds: quality-gated, identifiers per contract, delivered with receipts."""
    runs = stages.export(obj.config, _day(day, obj.config), feeds=list(feeds) or None, orgs=list(orgs) or None,
                         progress=_progress("export"))  # fmt: skip
    by_feed: dict[str, list[Any]] = {}
    for r in runs:
        by_feed.setdefault(r.feed, []).append(r)
    _done(f"{len(by_feed)} feeds for {len({r.org_code for r in runs})} institutions:")
    for name, items in by_feed.items():
        unsent = sum(r.failed + r.rejected for r in items)
        _done(f"  {name:22s} → {items[0].target:18s} {sum(r.sent for r in items):>8,} sent  "
              f"{sum(r.unchanged for r in items):>8,} unchanged  {sum(r.excluded for r in items):>6,} held back  "
              f"{sum(r.delivered for r in items):>4} delivered  {unsent:>3} unsent")  # fmt: skip


@cli.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Run every stage in order without Dagster (ingest, transform, quality, export)."""
    for command in (ingest, transform, quality, export):
        ctx.invoke(command)


@cli.command()
@click.pass_obj
def demo(obj: Context) -> None:
    """Generate the synthetic county and run the whole platform through Dagster; print where to look."""
    from pipelines.demo import run_demo

    for line in run_demo(obj.config, progress=_progress("demo")):
        _done(line)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: expected failures become one line on stderr and exit status 1."""
    try:
        return cli.main(args=argv, prog_name="hutong", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        return sys.exit(exc.exit_code)
    except _expected_errors() as exc:
        message = str(exc).strip() or type(exc).__name__
        click.echo(f"hutong: error: {message}", err=True)
        return sys.exit(1)


if __name__ == "__main__":
    main()
