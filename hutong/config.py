"""Platform configuration: one YAML file describing a county, with ${ENV} interpolation for secrets and URLs."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "config" / "county.yaml"
CONFIG_ENV = "HUTONG_CONFIG"

INSTITUTION_TYPES = ("二级医院", "乡镇卫生院", "社区卫生服务中心", "村卫生室")
SOURCE_KINDS = ("his", "lis", "pacs", "emr", "public_health")

_ENV_PATTERN = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-((?:[^{}]|\{[^{}]*\}|\$\{[^{}]*\})*))?\}")
_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


class ConfigError(Exception):
    """A configuration problem, phrased as one line that says what is wrong and how to fix it."""


def uscc_is_valid(code: str) -> bool:
    """Check a 统一社会信用代码 (GB 32100-2015) by its check character."""
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return False
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]


def expand_env(text: str, where: str = "config") -> str:
    """Replace ${NAME} and ${NAME:-default} (defaults may nest) with environment values."""

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = os.environ.get(name)
        if value:
            return value
        if default is not None:
            return expand_env(default, where)
        raise ConfigError(f"{where}: environment variable {name} is not set; export {name}=... or give a default")

    previous = None
    while previous != text:
        previous, text = text, _ENV_PATTERN.sub(replace, text)
    return text


def _expand_tree(node: Any, where: str) -> Any:
    if isinstance(node, str):
        return expand_env(node, where)
    if isinstance(node, list):
        return [_expand_tree(item, where) for item in node]
    if isinstance(node, dict):
        return {key: _expand_tree(value, where) for key, value in node.items()}
    return node


@dataclass(frozen=True)
class SourceConfig:
    """One source system of one institution (HIS database, LIS feed, ...)."""

    kind: str
    settings: dict[str, Any]

    def get(self, key: str, default: Any = None) -> Any:
        return self.settings.get(key, default)


@dataclass(frozen=True)
class Institution:
    """A reporting institution of the county."""

    org_code: str
    short: str
    name: str
    type: str
    grade: str
    township: str
    beds: int
    physicians: int
    sources: dict[str, SourceConfig] = field(default_factory=dict)


@dataclass(frozen=True)
class PlatformConfig:
    """The whole platform file, with environment values already substituted."""

    path: Path
    name: str
    timezone: str
    cutoff: str
    data_dir: Path
    warehouse_url: str
    county: dict[str, Any]
    institutions: tuple[Institution, ...]
    synthetic: dict[str, Any] | None = None  # set when the sources are the generated demo county

    def institution(self, org: str) -> Institution:
        """Find an institution by organisation code or short name."""
        for inst in self.institutions:
            if org in (inst.org_code, inst.short):
                return inst
        known = ", ".join(i.short for i in self.institutions)
        raise ConfigError(f"unknown institution {org!r}; known: {known}")

    def with_source(self, kind: str) -> list[Institution]:
        return [i for i in self.institutions if kind in i.sources]


def _fill(value: Any, **names: str) -> Any:
    """Fill {org_code} / {data_dir} placeholders in a string setting."""
    if not isinstance(value, str):
        return value
    for name, text in names.items():
        value = value.replace("{" + name + "}", text)
    return value


def _resolve_path(value: str, base: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else (base / path).resolve()


def _require(mapping: dict[str, Any], key: str, where: str) -> Any:
    if key not in mapping or mapping[key] in (None, ""):
        raise ConfigError(f"{where}: missing required setting '{key}'")
    return mapping[key]


def _institution(raw: dict[str, Any], defaults: dict[str, Any], data_dir: Path, where: str) -> Institution:
    org = str(_require(raw, "org_code", where))
    where = f"{where} institution {org}"
    if not uscc_is_valid(org):
        raise ConfigError(f"{where}: org_code is not a valid 统一社会信用代码 (GB 32100 check character)")
    inst_type = _require(raw, "type", where)
    if inst_type not in INSTITUTION_TYPES:
        raise ConfigError(f"{where}: type {inst_type!r} must be one of {', '.join(INSTITUTION_TYPES)}")
    sources: dict[str, SourceConfig] = {}
    for kind, settings in (raw.get("sources") or {}).items():
        if kind not in SOURCE_KINDS:
            raise ConfigError(f"{where}: unknown source kind {kind!r}; use one of {', '.join(SOURCE_KINDS)}")
        merged = {**defaults.get(kind, {}), **(settings or {})}
        merged = {k: _fill(v, org_code=org, data_dir=str(data_dir)) for k, v in merged.items()}
        sources[kind] = SourceConfig(kind=kind, settings=merged)
    return Institution(
        org_code=org,
        short=str(_require(raw, "short", where)),
        name=str(_require(raw, "name", where)),
        type=inst_type,
        grade=str(raw.get("grade", "未定级")),
        township=str(raw.get("township", "")),
        beds=int(raw.get("beds", 0)),
        physicians=int(raw.get("physicians", 0)),
        sources=sources,
    )


def load_config(path: str | Path | None = None) -> PlatformConfig:
    """Load the platform file named by the argument, $HUTONG_CONFIG or the shipped default county."""
    config_path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    if not config_path.is_file():
        raise ConfigError(
            f"config file {config_path} not found; pass --config PATH or set {CONFIG_ENV} (default: {DEFAULT_CONFIG})"
        )
    try:
        raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{config_path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
    where = str(config_path)
    raw = _expand_tree(raw, where)
    platform = raw.get("platform") or {}
    base = PROJECT_ROOT if config_path.resolve().parent.parent == PROJECT_ROOT else config_path.resolve().parent
    data_dir = _resolve_path(str(platform.get("data_dir", "./data")), base)
    warehouse = raw.get("warehouse") or {}
    url = _fill(str(_require(warehouse, "url", f"{where} warehouse")), data_dir=str(data_dir))
    defaults = raw.get("source_defaults") or {}
    institutions = tuple(_institution(item, defaults, data_dir, where) for item in raw.get("institutions") or [])
    if not institutions:
        raise ConfigError(f"{where}: no institutions configured; add at least one under 'institutions:'")
    seen: set[str] = set()
    for inst in institutions:
        for key in (inst.org_code, inst.short):
            if key in seen:
                raise ConfigError(f"{where}: institution {key} is listed twice")
            seen.add(key)
    return PlatformConfig(
        path=config_path.resolve(),
        name=str(platform.get("name", "Hutong")),
        timezone=str(platform.get("timezone", "Asia/Shanghai")),
        cutoff=str(platform.get("cutoff", "24:00")),
        data_dir=data_dir,
        warehouse_url=url,
        county=raw.get("county") or {},
        institutions=institutions,
        synthetic=_synthetic(raw.get("synthetic"), where),
    )


def _synthetic(raw: Any, where: str) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: 'synthetic' must be a mapping with size and seed")
    try:
        return {"size": str(raw.get("size", "demo")), "seed": int(raw.get("seed", 20261124))}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: synthetic.seed must be an integer") from exc
