"""Reading HIS vendor tables page by page, as text, in watermark order.

Two readers give the same pages:

- `SqlAlchemyReader` (any SQLAlchemy URL: SQLite, PostgreSQL, MariaDB/MySQL through pymysql): one keyset query
  per page (`LIMIT batch_size`); values are turned into text in Python (`as_text`).
- `ConnectorxReader` (MariaDB/MySQL, the default there): the server casts every column to text and connectorx
  streams the result as Arrow, so no value passes through Python. Unthrottled, one query per table is
  streamed from the watermark and cut into pages (the server sorts once instead of once per page);
  with a rate limit, each page is its own short `LIMIT` query, so no query stays open while the reader waits.

Either way a page ends on a (watermark, key) boundary that the caller commits with the page's rows: an
interrupted pull resumes after the last committed page. A table without a watermark yet is read whole, so a
row whose update-time text sorts before the epoch (a leading blank, say) is not skipped on the first pull.
Values are the server's text for each column, identical to `as_text` for the text, DATE, DATETIME, DECIMAL
and integer columns of the vendor schemas (for DATETIME with fractional seconds the server's text keeps the
fraction, which `as_text` drops).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import polars as pl
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from connectors.his_mapping import EPOCH, WATERMARK, TableMapping, as_text
from connectors.ledger import SourceError

READERS = ("auto", "sqlalchemy", "connectorx")


class PageReader(Protocol):
    def pages(self, table: TableMapping, ts: str, key: str, batch_size: int) -> Iterator[pl.DataFrame]:
        """Pages of at most `batch_size` rows after (ts, key) in (watermark, key) order; snapshots whole."""
        ...

    def close(self) -> None: ...


def safe_url(url: str) -> str:
    """A source URL with its password hidden."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


def open_reader(org_code: str, url: str, reader: str = "auto", throttled: bool = False) -> PageReader:
    """The reader for a source URL: connectorx for MariaDB/MySQL unless `reader` says otherwise."""
    if reader not in READERS:
        raise SourceError(f"{org_code}: unknown HIS reader {reader!r}; use one of {', '.join(READERS)}")
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError as exc:
        raise SourceError(f"{org_code}: HIS url {safe_url(url)} is not usable: {exc}") from exc
    if reader == "connectorx" or (reader == "auto" and backend in ("mysql", "mariadb")):
        if backend not in ("mysql", "mariadb"):
            raise SourceError(f"{org_code}: the connectorx HIS reader reads MariaDB/MySQL only, not {backend}")
        return ConnectorxReader(org_code, url, throttled)
    return SqlAlchemyReader(org_code, url)


def _columns(table: TableMapping) -> list[str]:
    return table.selected


class SqlAlchemyReader:
    """Keyset pages through SQLAlchemy (bind parameters), values made text in Python."""

    def __init__(self, org_code: str, url: str) -> None:
        self.org_code, self.url = org_code, url
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, SQLAlchemyError, ModuleNotFoundError) as exc:
            raise SourceError(f"{org_code}: HIS url {safe_url(url)} is not usable: {exc}") from exc
        self._conn: Connection | None = None

    def _sql(self, table: TableMapping, from_start: bool) -> str:
        cols = ", ".join(_columns(table))
        if table.snapshot:  # small local code tables: read whole, paged in key order
            return f"SELECT {cols} FROM {table.name} ORDER BY {', '.join(table.keys)} LIMIT :limit OFFSET :offset"
        wm = f"COALESCE({table.updated_at}, '{EPOCH}')"
        after = f"WHERE {wm} > :ts OR ({wm} = :ts AND {table.key} > :key) " if not from_start else ""
        order = f"ORDER BY {WATERMARK}, {table.key} LIMIT :limit"
        return f"SELECT {cols}, {wm} AS {WATERMARK} FROM {table.name} {after}{order}"

    def _page(self, table: TableMapping, ts: str, key: str, batch_size: int, offset: int) -> pl.DataFrame | None:
        if self._conn is None:
            self._conn = self.engine.connect()
        sql = text(self._sql(table, from_start=(ts, key) == (EPOCH, "")))
        result = self._conn.execute(sql, {"ts": ts, "key": key, "limit": batch_size, "offset": offset})
        names, rows = list(result.keys()), result.fetchall()
        if not rows:
            return None
        return pl.DataFrame(
            {n: [as_text(v) for v in col] for n, col in zip(names, zip(*rows, strict=True), strict=True)},
            schema=dict.fromkeys(names, pl.String),
        )

    def pages(self, table: TableMapping, ts: str, key: str, batch_size: int) -> Iterator[pl.DataFrame]:
        try:
            yield from _keyset_pages(self._page, table, ts, key, batch_size)
        except SQLAlchemyError as exc:
            first = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0]
            raise SourceError(f"{self.org_code}: cannot read HIS at {safe_url(self.url)}: {first}") from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self.engine.dispose()


PageFetch = Callable[[TableMapping, str, str, int, int], "pl.DataFrame | None"]


def _keyset_pages(read: PageFetch, table: TableMapping, ts: str, key: str, batch_size: int) -> Iterator[pl.DataFrame]:
    """Pages of `read(table, ts, key, batch_size, offset)` after (ts, key) — by offset for a snapshot table —
    until a short or empty page."""
    offset = 0
    while True:
        page = read(table, ts, key, batch_size, offset)
        if page is None or page.height == 0:
            return
        offset += page.height
        if not table.snapshot:
            ts, key = page[WATERMARK][-1] or EPOCH, page[table.key][-1] or ""
        yield page
        if page.height < batch_size:
            return


def _literal(value: str) -> str:
    """A MySQL string literal that no sql_mode reads differently: hex with a charset introducer."""
    return f"_utf8mb4 X'{value.encode('utf-8').hex()}'"


def _quoted(name: str) -> str:
    return f"`{name}`"


class ConnectorxReader:
    """Pages from MariaDB/MySQL streamed as Arrow by connectorx, every column cast to text by the server."""

    def __init__(self, org_code: str, url: str, throttled: bool) -> None:
        self.org_code, self.url, self.throttled = org_code, url, throttled
        try:
            parsed = make_url(url)
            self.cx_url = parsed.set(drivername="mysql", query={}).render_as_string(hide_password=False)
        except ArgumentError as exc:
            raise SourceError(f"{org_code}: HIS url {safe_url(url)} is not usable: {exc}") from exc

    def _sql(self, table: TableMapping, ts: str, key: str, limit: int | None, offset: int) -> str:
        cols = ", ".join(f"CAST({_quoted(c)} AS CHAR) AS {_quoted(c)}" for c in _columns(table))
        tail = f" LIMIT {int(limit)}" if limit else ""
        if table.snapshot:
            order = ", ".join(_quoted(k) for k in table.keys)
            return f"SELECT {cols} FROM {_quoted(table.name)} ORDER BY {order}" + (
                f"{tail} OFFSET {int(offset)}" if limit else "")  # fmt: skip
        wm, k = f"COALESCE({_quoted(table.updated_at or '')}, '{EPOCH}')", _quoted(table.key)
        after = f"WHERE {wm} > {_literal(ts)} OR ({wm} = {_literal(ts)} AND {k} > {_literal(key)}) "
        return (
            f"SELECT {cols}, CAST({wm} AS CHAR) AS {WATERMARK} FROM {_quoted(table.name)} "
            f"{after if (ts, key) != (EPOCH, '') else ''}ORDER BY {wm}, {k}{tail}"
        )

    def _stream(self, sql: str, batch_size: int) -> Iterator[pl.DataFrame]:
        import connectorx

        try:
            reader: Any = connectorx.read_sql(self.cx_url, sql, return_type="arrow_stream", batch_size=batch_size)
            for batch in reader:
                if batch.num_rows:
                    yield _text_frame(pl.from_arrow(batch))  # type: ignore[arg-type]
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SourceError(f"{self.org_code}: cannot read HIS at {safe_url(self.url)}: {first}") from exc

    def pages(self, table: TableMapping, ts: str, key: str, batch_size: int) -> Iterator[pl.DataFrame]:
        if not self.throttled:  # one streamed query, cut into pages of exactly batch_size rows
            yield from _rechunk(self._stream(self._sql(table, ts, key, None, 0), batch_size), batch_size)
            return
        yield from _keyset_pages(self._page, table, ts, key, batch_size)

    def _page(self, table: TableMapping, ts: str, key: str, batch_size: int, offset: int) -> pl.DataFrame | None:
        chunks = list(self._stream(self._sql(table, ts, key, batch_size, offset), batch_size))
        return pl.concat(chunks) if chunks else None

    def close(self) -> None:
        return None


def _text_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """Every column as polars String (a server may type a cast-to-text column as binary)."""
    fixes = [pl.col(n).cast(pl.String) if d != pl.Binary else pl.col(n).map_elements(as_text, return_dtype=pl.String)
             for n, d in frame.schema.items() if d != pl.String]  # fmt: skip
    return frame.with_columns(fixes) if fixes else frame


def _rechunk(frames: Iterator[pl.DataFrame], size: int) -> Iterator[pl.DataFrame]:
    """Re-cut a stream of frames into frames of exactly `size` rows (the last one may be shorter)."""
    pending: list[pl.DataFrame] = []
    held = 0
    for frame in frames:
        pending.append(frame)
        held += frame.height
        while held >= size:
            whole = pl.concat(pending, rechunk=False)
            yield whole.slice(0, size).rechunk()
            rest = whole.slice(size)
            pending, held = ([rest] if rest.height else []), rest.height
    if held:
        yield pl.concat(pending).rechunk()
