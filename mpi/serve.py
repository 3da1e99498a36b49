"""A small read-only HTTP endpoint for PIX/PDQ lookups (stdlib http.server; JSON; PII masked).

GET /pix?system=HIS-A&local_id=BR1&org=…   → {"empi_id": …}
GET /xref/<empi_id>                        → cross-references
GET /golden/<empi_id>                      → golden record (masked)
GET /pdq?name=…&birth_date=…&sex=…&id_no=…&phone=…&address=…&limit=10 → ranked candidates (masked)
"""

from __future__ import annotations

import json
from datetime import date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from mpi import lookup
from mpi.cli import _mask
from warehouse import Warehouse

PDQ_FIELDS = ("name", "birth_date", "sex", "id_no", "phone", "address")


def _clean(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _clean(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    return _mask(key, value)


def make_server(warehouse_url: str, townships: list[dict[str, str]], host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server answering lookups from the warehouse (one short read-only connection per request)."""

    class Handler(BaseHTTPRequestHandler):
        def _send(self, status: int, body: Any) -> None:
            data = json.dumps(_clean(body), ensure_ascii=False).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            try:
                with Warehouse(warehouse_url, read_only=warehouse_url.startswith("duckdb")) as wh:
                    if parts == ["pix"] and "system" in q and "local_id" in q:
                        empi = lookup.empi_for(wh, q["system"], q["local_id"], q.get("org"))
                        return self._send(200 if empi else 404, {"empi_id": empi})
                    if len(parts) == 2 and parts[0] == "xref":
                        return self._send(200, lookup.xrefs(wh, parts[1]))
                    if len(parts) == 2 and parts[0] == "golden":
                        record = lookup.golden(wh, parts[1])
                        return self._send(200 if record else 404, record or {"error": "unknown EMPI id"})
                    if parts == ["pdq"]:
                        args = {k: q[k] for k in PDQ_FIELDS if q.get(k)}
                        limit = int(q.get("limit", "10"))
                        return self._send(200, lookup.search(wh, townships=townships, limit=limit, **args))
                return self._send(404, {"error": "unknown path; see /pix, /xref/<id>, /golden/<id>, /pdq"})
            except ValueError as exc:
                return self._send(400, {"error": str(exc)})

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)
