"""Reproducible one-sheet .xlsx files, written fast.

openpyxl builds an object per cell, which dominates the public-health exports at county size. Here openpyxl
writes each (sheet title, creator, header) workbook once with the header row only; the data rows are then
serialised as openpyxl itself would (inline strings, numbers as "%.16g") and spliced into that sheet. Metadata
and zip timestamps are fixed, so the same rows give the same bytes; tests check the result equals openpyxl's
own output for the same rows.
"""

from __future__ import annotations

import io
import re
import zipfile
from datetime import datetime
from functools import cache
from typing import Any

FIXED = datetime(2026, 1, 1)
MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")
DIMENSION = re.compile(r'<dimension ref="[^"]*" />')
SHEET = "xl/worksheets/sheet1.xml"


def _column_letter(index: int) -> str:
    """1 → A, 27 → AA (spreadsheet column names)."""
    letters = ""
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(65 + rest) + letters
    return letters


def _text(value: str) -> str:
    if "&" in value or "<" in value or ">" in value:
        value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return value


def _cell(ref: str, value: Any) -> str:
    """One <c> element as openpyxl's etree writer serialises it (None: no element)."""
    if value is None:
        return ""
    if isinstance(value, str):
        if value == "":
            return f'<c r="{ref}" t="inlineStr" />'
        if value[0] == "=":
            raise ValueError(f"a text cell may not start with '=' (a formula to Excel): {value!r}")
        stripped = value.strip()
        space = ' xml:space="preserve"' if stripped and stripped != value else ""
        return f'<c r="{ref}" t="inlineStr"><is><t{space}>{_text(value)}</t></is></c>'
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"only text and numbers are written: {value!r}")
    return f'<c r="{ref}" t="n"><v>{value:.16g}</v></c>'  # openpyxl: "%.16g"


@cache
def _template(title: str, creator: str, header: tuple[str, ...]) -> tuple[dict[str, bytes], str, str]:
    """The workbook's other parts (zip name → bytes) and the sheet XML before and after the data rows."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = title
    sheet.append(list(header))
    workbook.properties.created = workbook.properties.modified = FIXED
    workbook.properties.creator = creator
    raw = io.BytesIO()
    workbook.save(raw)
    parts: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(raw.getvalue())) as source:
        for name in source.namelist():
            content = source.read(name)
            if name == "docProps/core.xml":  # openpyxl stamps the save time here
                content = MODIFIED.sub(b"\\g<1>2026-01-01T00:00:00Z\\g<2>", content)
            parts[name] = content
    sheet_xml = parts.pop(SHEET).decode("utf-8")
    head, _, rest = sheet_xml.partition("</row>")  # after the header row
    _, _, tail = rest.partition("</sheetData>")
    return parts, head + "</row>", "</sheetData>" + tail


def workbook_bytes(title: str, creator: str, header: list[str], rows: list[list[Any]]) -> bytes:
    """An .xlsx with one sheet `title`: the header row, then `rows` (text or numbers; None leaves a cell out)."""
    parts, head, tail = _template(title, creator, tuple(header))
    letters = [_column_letter(i) for i in range(1, len(header) + 1)]
    width = max([len(header), *(len(r) for r in rows)])
    out = [DIMENSION.sub(f'<dimension ref="A1:{_column_letter(width)}{len(rows) + 1}" />', head, count=1)]
    while len(letters) < width:
        letters.append(_column_letter(len(letters) + 1))
    for number, row in enumerate(rows, start=2):
        cells = "".join(_cell(f"{letters[i]}{number}", v) for i, v in enumerate(row))
        out.append(f'<row r="{number}">{cells}</row>')
    out.append(tail)
    parts = {**parts, SHEET: "".join(out).encode("utf-8")}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for name in sorted(parts):
            info = zipfile.ZipInfo(name, date_time=FIXED.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(info, parts[name])
    return buffer.getvalue()
