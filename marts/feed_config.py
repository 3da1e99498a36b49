"""Feeds and targets as data: `marts/feeds/*.yaml` (what, in which format, gated how, carrying which identifiers)
and `marts/targets.yaml` (where: an outbox folder or an HTTP endpoint, with retry settings)."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from hutong.config import ConfigError, expand_env

MARTS_DIR = Path(__file__).parent
FEEDS_DIR = MARTS_DIR / "feeds"
TARGETS_FILE = MARTS_DIR / "targets.yaml"
FORMATS = ("csv", "jsonl", "fhir", "cda")
PII_KINDS = ("name", "id_no", "phone", "address")
POLICIES = ("clear", "masked", "omit")


@dataclass(frozen=True)
class Retry:
    """Attempts per run and exponential backoff between them (seconds)."""

    attempts: int = 5
    backoff_seconds: float = 2.0
    factor: float = 2.0
    max_backoff_seconds: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return min(self.backoff_seconds * self.factor ** (attempt - 1), self.max_backoff_seconds)


@dataclass(frozen=True)
class Target:
    """An upstream receiver: `url` is http(s)://… (POST) or a folder path (outbox)."""

    name: str
    url: str
    description: str = ""
    retry: Retry = field(default_factory=Retry)
    timeout_seconds: float = 30.0
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def is_http(self) -> bool:
        return self.url.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Source:
    """Where a feed's records come from: a FROM clause, the record key and institution columns, watermark tables."""

    from_sql: str
    key: str
    org: str
    origin: str
    batch: str
    # (label, table, key column, match): a record is new when a row of a watermark table in an ingest batch the
    # feed has not covered yet (feeds.covered_batch, keyed by the label) has a key equal to the record's `match`
    # expression — the record key unless the YAML names another column of the source (a patient's new version
    # re-sends the encounters showing that patient: `match: e.patient_key`)
    watermark: tuple[tuple[str, str, str, str], ...]
    where: str = ""
    requires: tuple[str, ...] = ()  # tables that may not exist yet (a source kind an institution lacks): no records


ORG_TOKEN = "'{org}'"  # replaced by the institution of the run (for_org)
CURRENT = re.compile(r"\bcurrent\((raw\.\w+)\)")


def current_sql(text: str) -> str:
    """Expand `current(raw.table)` to the table's current rows (latest version per institution and source key,
    soft deletes dropped) — the same rule as the dbt macro `current_rows`, so a feed can read raw until a cdr
    model exists and be repointed later by editing only its YAML."""
    return CURRENT.sub(
        lambda m: (
            "(SELECT * FROM (SELECT v.*, row_number() OVER (PARTITION BY v._org_code, v._source_key "
            "ORDER BY v._source_updated_at DESC NULLS LAST, v._ingested_at DESC, v._record_hash) AS _version_rank "
            f"FROM {m.group(1)} v WHERE v._org_code = {ORG_TOKEN}) cv WHERE cv._version_rank = 1 AND cv._op <> 'D')"
        ),
        text,
    )


def watermark_label(table: str, key: str, match: str = "") -> str:
    """A stable short name for one watermark table of a feed (as written in its YAML): the ledger of covered
    batches is kept per table, so reordering the list changes nothing; editing an entry re-examines its batches
    (the content-hash ledger still sends nothing twice)."""
    return hashlib.sha256(f"{table}\n{key}{chr(10) + match if match else ''}".encode()).hexdigest()[:16]


def for_org(feed: Feed, org: str) -> Feed:
    """The feed with its `current(...)` reads narrowed to one institution (versions are per institution anyway)."""
    literal = "'" + org.replace("'", "''") + "'"

    def sub(sql: str) -> str:
        return sql.replace(ORG_TOKEN, literal)

    source = replace(feed.source, from_sql=sub(feed.source.from_sql))
    components = tuple(replace(c, from_sql=sub(c.from_sql)) for c in feed.components)
    return replace(feed, source=source, components=components)


@dataclass(frozen=True)
class Column:
    name: str
    sql: str
    pii: str | None = None  # name / id_no / phone / address: the feed's identifier policy applies


@dataclass(frozen=True)
class Component:
    """Rows belonging to a record (diagnoses of an encounter ...): fetched per page of records by the parent key."""

    name: str
    from_sql: str
    parent: str
    columns: tuple[Column, ...]
    order: str = ""


@dataclass(frozen=True)
class Feed:
    name: str
    description: str
    standard: str
    format: str
    target: str
    schedule: str
    source: Source
    columns: tuple[Column, ...]
    components: tuple[Component, ...] = ()
    gate_severities: tuple[str, ...] = ("error",)
    gate_datasets: dict[str, str] = field(default_factory=dict)  # quality dataset → record column with its key
    identifiers: dict[str, str] = field(default_factory=dict)  # pii kind → clear / masked / omit
    contract: str = ""
    max_records: int = 1000  # per package (0 = one package per institution and run)
    layout: str = "{feed}/{org}/{period}/{delivery_id}.{ext}"
    options: dict[str, Any] = field(default_factory=dict)  # format-specific settings (fhir version, cda templates)
    path: Path | None = None

    def policy(self, kind: str) -> str:
        """The contract's policy for one kind of personal identifier; masked unless the contract says otherwise."""
        return self.identifiers.get(kind, "masked")


def _columns(raw: dict[str, Any], where: str) -> tuple[Column, ...]:
    columns = []
    for name, spec in (raw or {}).items():
        if isinstance(spec, dict):
            pii = spec.get("pii")
            if pii not in PII_KINDS:
                raise ConfigError(f"{where}: column {name}: pii must be one of {', '.join(PII_KINDS)}")
            columns.append(Column(str(name), str(spec["sql"]), str(pii)))
        else:
            columns.append(Column(str(name), str(spec)))
    return tuple(columns)


def parse_feed(raw: dict[str, Any], where: str) -> Feed:
    """Validate one feed entry; errors name the file and the field."""
    for key in ("feed", "format", "target", "source", "columns", "standard"):
        if key not in raw:
            raise ConfigError(f"{where}: missing '{key}'")
    if raw["format"] not in FORMATS:
        raise ConfigError(f"{where}: format {raw['format']!r} is not one of {', '.join(FORMATS)}")
    src = raw["source"]
    source = Source(
        from_sql=current_sql(str(src["from"])),
        key=str(src["key"]),
        org=str(src["org"]),
        origin=str(src.get("origin", "NULL")),
        batch=str(src.get("batch", "NULL")),
        watermark=tuple(
            (
                watermark_label(str(w["table"]), str(w["key"]), str(w.get("match", ""))),
                current_sql(str(w["table"])),
                str(w["key"]),
                str(w.get("match") or src["key"]),
            )
            for w in src.get("watermark") or []
        ),
        where=str(src.get("where", "")),
        requires=tuple(str(t) for t in src.get("requires") or ()),
    )
    if not source.watermark:
        raise ConfigError(f"{where}: source.watermark must list at least one table (incremental by watermark)")
    identifiers = {str(k): str(v) for k, v in (raw.get("identifiers") or {}).items()}
    for kind, policy in identifiers.items():
        if kind not in PII_KINDS or policy not in POLICIES:
            raise ConfigError(f"{where}: identifiers.{kind}: {policy!r} (kinds {PII_KINDS}, policies {POLICIES})")
    if any(p == "clear" for p in identifiers.values()) and not raw.get("contract"):
        raise ConfigError(f"{where}: identifiers in clear need a 'contract' saying why the receiver requires them")
    gate = raw.get("gate") or {}
    components = tuple(
        Component(
            str(name),
            current_sql(str(c["from"])),
            str(c["parent"]),
            _columns(c["columns"], f"{where} {name}"),
            str(c.get("order", "")),
        )
        for name, c in (raw.get("components") or {}).items()
    )
    package = raw.get("package") or {}
    return Feed(
        name=str(raw["feed"]),
        description=str(raw.get("description", "")),
        standard=str(raw["standard"]),
        format=str(raw["format"]),
        target=str(raw["target"]),
        schedule=str(raw.get("schedule", "0 4 * * *")),
        source=source,
        columns=_columns(raw["columns"], where),
        components=components,
        gate_severities=tuple(gate.get("severities", ["error"])),
        gate_datasets={str(k): str(v) for k, v in (gate.get("datasets") or {}).items()},
        identifiers=identifiers,
        contract=str(raw.get("contract", "")),
        max_records=int(package.get("max_records", 1000)),
        layout=str(raw.get("layout", Feed.layout)),
        options=dict(raw.get("options") or {}),
    )


@cache
def load_feeds(folder: Path = FEEDS_DIR) -> tuple[Feed, ...]:
    """Every feed in the folder, sorted by name."""
    feeds = []
    for path in sorted(folder.glob("*.yaml")):
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        feed = parse_feed(raw, str(path))
        feeds.append(Feed(**{**feed.__dict__, "path": path}))
    names = [f.name for f in feeds]
    if len(set(names)) != len(names):
        raise ConfigError(f"{folder}: feed names must be unique: {names}")
    return tuple(feeds)


def feed(name: str) -> Feed:
    for f in load_feeds():
        if f.name == name:
            return f
    raise ConfigError(f"unknown feed {name!r}; known: {', '.join(f.name for f in load_feeds())}")


@cache
def _targets_file(path: Path, mtime_ns: int) -> dict[str, Any]:
    """The parsed targets file (cached per modification time: feed runs look targets up once per run)."""
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def load_targets(data_dir: Path, path: Path = TARGETS_FILE) -> dict[str, Target]:
    """Targets with ${ENV} values filled in and {data_dir} resolved."""
    raw = _targets_file(path, path.stat().st_mtime_ns)
    targets = {}
    for name, spec in (raw.get("targets") or {}).items():
        url = expand_env(str(spec["url"]), f"{path} {name}").replace("{data_dir}", str(data_dir))
        retry = Retry(**{k: float(v) if k != "attempts" else int(v) for k, v in (spec.get("retry") or {}).items()})
        headers = {str(k): expand_env(str(v), f"{path} {name}") for k, v in (spec.get("headers") or {}).items()}
        targets[name] = Target(
            str(name), url, str(spec.get("description", "")), retry, float(spec.get("timeout_seconds", 30)), headers
        )
    return targets


def target_for(feed: Feed, data_dir: Path, overrides: dict[str, Target] | None = None) -> Target:
    """The feed's target; `overrides` (tests, CLI) replace configured ones by name."""
    if overrides and feed.target in overrides:
        return overrides[feed.target]
    targets = load_targets(data_dir)
    if feed.target not in targets:
        raise ConfigError(f"feed {feed.name}: target {feed.target!r} is not in {TARGETS_FILE}")
    return targets[feed.target]


def actor() -> str:
    """Who runs the export, for the audit table."""
    return os.environ.get("HUTONG_ACTOR") or f"hutong:{os.environ.get('USER', 'platform')}"
