"""Send one packaged delivery to its target: an outbox folder (atomic copy) or an HTTP endpoint (POST with an
Idempotency-Key), retrying transient failures with exponential backoff."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from marts.feed_config import Target

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
RECEIPT_LIMIT = 4000


@dataclass(frozen=True)
class Outcome:
    status: str  # delivered / failed (transient, retry later) / rejected (the receiver refused the payload)
    attempts: int
    receipt: str | None = None
    error: str | None = None
    destination: str | None = None


class _Transient(Exception):
    pass


class _Refused(Exception):
    pass


def _post(target: Target, delivery: dict[str, Any], body: bytes) -> tuple[str, str]:
    """POST the payload; returns (receipt, URL). Raises _Transient or _Refused."""
    digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
    headers = {
        "Content-Type": str(delivery["content_type"]),
        "Idempotency-Key": str(delivery["delivery_id"]),
        "Digest": f"sha-256={digest}",
        "X-Hutong-Feed": str(delivery["feed"]),
        "X-Hutong-Org": str(delivery["org_code"]),
        "X-Hutong-Records": str(delivery["record_count"]),
        **target.headers,
    }
    request = urllib.request.Request(target.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=target.timeout_seconds) as response:
            text = response.read(RECEIPT_LIMIT).decode("utf-8", "replace")
            return text or json.dumps({"status": response.status}), target.url
    except urllib.error.HTTPError as exc:
        text = exc.read(RECEIPT_LIMIT).decode("utf-8", "replace")
        if exc.code == 409:  # the receiver already holds this Idempotency-Key: the earlier attempt arrived
            return text or json.dumps({"status": 409, "duplicate": True}), target.url
        if exc.code in RETRYABLE_STATUS:
            raise _Transient(f"HTTP {exc.code}: {text[:300]}") from exc
        raise _Refused(f"HTTP {exc.code}: {text[:300]}") from exc
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        raise _Transient(f"{type(exc).__name__}: {exc}") from exc


def _store(target: Target, delivery: dict[str, Any], spool: Path) -> tuple[str, str]:
    """Copy the payload into the outbox under its layout path (temp file + rename: readers never see half)."""
    final = Path(target.url) / str(delivery["file_name"])
    expected = str(delivery["checksum"]).removeprefix("sha256:")
    if final.is_file() and hashlib.sha256(final.read_bytes()).hexdigest() == expected:
        return json.dumps({"stored": str(final), "sha256": expected, "already_present": True}), str(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(final.name + ".part")
        shutil.copyfile(spool, tmp)
        tmp.replace(final)
    except OSError as exc:
        raise _Transient(f"outbox {final}: {exc}") from exc
    return json.dumps({"stored": str(final), "sha256": expected}), str(final)


def send(
    target: Target,
    delivery: dict[str, Any],
    sleep: Callable[[float], None] = time.sleep,
    on_attempt: Callable[[Outcome], None] | None = None,
) -> Outcome:
    """Deliver with up to `target.retry.attempts` attempts; `on_attempt` records each one in the ledger."""
    spool = Path(str(delivery["spool_path"]))
    body = spool.read_bytes()
    if hashlib.sha256(body).hexdigest() != str(delivery["checksum"]).removeprefix("sha256:"):
        outcome = Outcome("rejected", 1, error=f"spool file {spool} does not match its checksum; not sent")
        if on_attempt:
            on_attempt(outcome)
        return outcome
    retry = target.retry
    for attempt in range(1, retry.attempts + 1):
        try:
            receipt, where = _post(target, delivery, body) if target.is_http else _store(target, delivery, spool)
            outcome = Outcome("delivered", attempt, receipt=receipt, destination=where)
        except _Refused as exc:
            outcome = Outcome("rejected", attempt, error=str(exc))
        except _Transient as exc:
            outcome = Outcome("failed", attempt, error=str(exc))
        if on_attempt:
            on_attempt(outcome)
        if outcome.status != "failed":
            return outcome
        if attempt < retry.attempts:
            sleep(retry.delay(attempt))
    return outcome
