"""Small file-writing helper for the source writers."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any


def set_arrival(path: Path, at: datetime) -> None:
    """Stamp a file's modification time: when it reached the front-end folder (connectors measure lateness by it)."""
    stamp = at.timestamp()
    os.utime(path, (stamp, stamp))


def flat_json(record: dict[str, Any]) -> str:
    """`json.dumps(record, ensure_ascii=False, indent=1)` for a flat object (scalar values), the same text
    several times faster: with `indent`, json falls back to its pure-Python encoder."""
    dumps = json.dumps
    items = ",\n".join(f" {dumps(k, ensure_ascii=False)}: {dumps(v, ensure_ascii=False)}" for k, v in record.items())
    return "{\n" + items + "\n}" if record else "{}"


class FolderMaker:
    """Creates each output folder once (mkdir per file is a measurable cost at county size)."""

    def __init__(self) -> None:
        self._made: set[Path] = set()

    def write_bytes(self, path: Path, data: bytes, arrived: datetime | None = None) -> None:
        folder = path.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        path.write_bytes(data)
        if arrived is not None:
            set_arrival(path, arrived)

    def ensure(self, folder: Path) -> Path:
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return folder
