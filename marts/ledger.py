"""The delivery ledger in the `feeds` schema: the ingest batches each feed has covered (the newest as watermark),
packaged deliveries and their items, attempts and receipts, the exclusion list and the export audit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl

from warehouse import Warehouse

TIMEZONE = "Asia/Shanghai"
ITEM_TEXT = ("delivery_id", "feed", "target", "org_code", "record_key", "content_hash", "op", "_origin", "_batch_id")


def now_local(tz: str = TIMEZONE) -> datetime:
    """Platform wall-clock time without tzinfo (warehouse timestamps are local), to the microsecond."""
    return datetime.now(ZoneInfo(tz)).replace(tzinfo=None)


@dataclass
class Item:
    """One record inside a delivery."""

    record_key: str
    content_hash: str
    op: str
    origin: str | None
    batch_id: str | None


def cover_batches(wh: Warehouse, feed: str, target: str, org: str, period: str, now: datetime) -> None:
    """Record the run's new ingest batches (temp table feed_batches: src, bid, finished_at) as covered, so no later
    run examines them again; feeds.watermark keeps the newest batch covered for operators (informational)."""
    wh.execute(
        "INSERT INTO feeds.covered_batch (feed, target, org_code, source, batch_id, finished_at, run_period, "
        "covered_at) SELECT ?, ?, ?, src, bid, finished_at, ?, ? FROM feed_batches",
        [feed, target, org, period, now],
    )
    newest = wh.scalar("SELECT max(finished_at) FROM feed_batches")
    if newest is None:
        return
    wh.execute(
        "DELETE FROM feeds.watermark WHERE feed = ? AND target = ? AND org_code = ? AND watermark < ?",
        [feed, target, org, newest],
    )  # a late batch of an earlier time covered now keeps the later mark
    wh.execute(
        "INSERT INTO feeds.watermark (feed, target, org_code, watermark, run_period, updated_at) "
        "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
        "(SELECT 1 FROM feeds.watermark WHERE feed = ? AND target = ? AND org_code = ?)",
        [feed, target, org, newest, period, now, feed, target, org],
    )


def record_package(
    wh: Warehouse, delivery: dict[str, Any], feed: str, target: str, org: str, items: Sequence[Item]
) -> None:
    """Store a packaged delivery (status pending) and its items in one transaction; repeating it is harmless."""
    created = now_local()
    with wh.transaction():
        if wh.scalar("SELECT count(*) FROM feeds.delivery WHERE delivery_id = ?", [delivery["delivery_id"]]):
            return  # the same content was packaged before (crash between packaging and watermark): keep it
        row = {
            **delivery,
            "feed": feed,
            "target": target,
            "org_code": org,
            "status": "pending",
            "attempts": 0,
            "created_at": created,
        }
        names = list(row)
        wh.execute(
            f"INSERT INTO feeds.delivery ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [row[n] for n in names],
        )
        items_frame = pl.DataFrame(
            {
                "delivery_id": [delivery["delivery_id"]] * len(items),
                "feed": [feed] * len(items),
                "target": [target] * len(items),
                "org_code": [org] * len(items),
                "record_key": [i.record_key for i in items],
                "content_hash": [i.content_hash for i in items],
                "op": [i.op for i in items],
                "_origin": [None if i.origin is None else str(i.origin) for i in items],
                "_batch_id": [None if i.batch_id is None else str(i.batch_id) for i in items],
                "created_at": [created] * len(items),
            },
            schema={**dict.fromkeys(ITEM_TEXT, pl.String), "created_at": pl.Datetime("us")},
        )
        wh.load("feeds.delivery_item", items_frame)  # bulk: Arrow insert on DuckDB, COPY on PostgreSQL


def unsent(wh: Warehouse, feed: str, target: str, org: str) -> list[dict[str, Any]]:
    """Deliveries still to send (pending, or failed on an earlier run), oldest first."""
    return wh.query_dicts(
        "SELECT * FROM feeds.delivery WHERE feed = ? AND target = ? AND org_code = ? "
        "AND status IN ('pending', 'failed') ORDER BY created_at, delivery_id",
        [feed, target, org],
    )


def mark_attempt(
    wh: Warehouse,
    delivery_id: str,
    status: str,
    error: str | None = None,
    receipt: str | None = None,
    destination: str | None = None,
) -> None:
    """Record one attempt: delivered (with receipt), failed (retried later) or rejected (receiver refused)."""
    at = now_local()
    wh.execute(
        "UPDATE feeds.delivery SET attempts = coalesce(attempts, 0) + 1, status = ?, last_error = ?, "
        "last_attempt_at = ?, receipt = coalesce(?, receipt), file_name = coalesce(?, file_name), "
        "delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END WHERE delivery_id = ?",
        [status, error, at, receipt, destination, status, at, delivery_id],
    )


def audit(
    wh: Warehouse,
    *,
    actor: str,
    audience: str,
    kind: str,
    object_name: str,
    org_code: str | None,
    record_count: int,
    destination: str,
    checksum: str | None,
    detail: str = "",
) -> str:
    """One row in feeds.export_audit for every export that left the platform."""
    audit_id = uuid.uuid4().hex
    wh.execute(
        "INSERT INTO feeds.export_audit (audit_id, exported_at, actor, audience, kind, object, org_code, record_count, "
        "destination, checksum, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            audit_id,
            now_local(),
            actor,
            audience,
            kind,
            object_name,
            org_code,
            record_count,
            destination,
            checksum,
            detail,
        ],
    )
    return audit_id
