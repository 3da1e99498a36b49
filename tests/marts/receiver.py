"""A local upstream platform for tests: an HTTP receiver on 127.0.0.1 that fails sometimes — it refuses with 503,
or it stores a package and then drops the connection before answering (the acknowledgement is lost)."""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """What reached the receiver: accepted packages by Idempotency-Key, and every request seen."""

    packages: dict[str, tuple[dict[str, str], bytes]] = field(default_factory=dict)
    requests: int = 0
    refused: int = 0
    lost_acks: int = 0
    repeats: int = 0


class FlakyReceiver:
    """Start with `with FlakyReceiver(fail=0.3, lose=0.2) as rx: rx.url`."""

    def __init__(self, fail: float = 0.0, lose: float = 0.0, seed: int = 1, status: int = 503) -> None:
        self.fail, self.lose, self.status = fail, lose, status
        self.rng = random.Random(seed)
        self.received = Received()
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                key = self.headers.get("Idempotency-Key", "")
                digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
                with receiver.lock:
                    receiver.received.requests += 1
                    roll = receiver.rng.random()
                    if self.headers.get("Digest") != f"sha-256={digest}":
                        self._answer(400, {"error": "digest mismatch"})
                        return
                    if roll < receiver.fail:
                        receiver.received.refused += 1
                        self._answer(receiver.status, {"error": "try later"})
                        return
                    if key in receiver.received.packages:
                        receiver.received.repeats += 1
                    else:
                        receiver.received.packages[key] = (dict(self.headers.items()), body)
                    if roll < receiver.fail + receiver.lose:
                        receiver.received.lost_acks += 1
                        self.close_connection = True  # stored, but the sender never hears back
                        return
                self._answer(200, {"receipt_id": f"R-{hashlib.sha1(key.encode()).hexdigest()[:10]}", "delivery": key})

            def _answer(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/fhir"

    def __enter__(self) -> FlakyReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
