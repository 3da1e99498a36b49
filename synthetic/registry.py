"""Source kinds the synthetic county can write besides HIS: kind → module exposing
`make_writer(ctx: WriterContext) -> SourceWriter`."""

from __future__ import annotations

import importlib

from synthetic.events import SourceWriter, WriterContext

WRITER_MODULES: dict[str, str] = {
    "lis": "synthetic.lis",
    "emr": "synthetic.emr",
    "pacs": "synthetic.pacs",
    "public_health": "synthetic.public_health",
}


def make_writer(kind: str, ctx: WriterContext) -> SourceWriter:
    try:
        module = WRITER_MODULES[kind]
    except KeyError as exc:
        raise ValueError(f"no synthetic writer for source kind {kind!r}; known: {', '.join(WRITER_MODULES)}") from exc
    return importlib.import_module(module).make_writer(ctx)
