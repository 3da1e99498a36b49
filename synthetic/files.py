"""Small file-writing helper for the source writers."""

from __future__ import annotations

from pathlib import Path


class FolderMaker:
    """Creates each output folder once (mkdir per file is a measurable cost at county size)."""

    def __init__(self) -> None:
        self._made: set[Path] = set()

    def write_bytes(self, path: Path, data: bytes) -> None:
        folder = path.parent
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        path.write_bytes(data)

    def ensure(self, folder: Path) -> Path:
        if folder not in self._made:
            folder.mkdir(parents=True, exist_ok=True)
            self._made.add(folder)
        return folder
