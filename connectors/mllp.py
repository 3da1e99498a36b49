"""MLLP listener: receives HL7 v2 over TCP and acknowledges only what is durably stored.

Every accepted message is appended to a spool segment in the sending institution's LIS drop folder
(`<lis drop_dir>/mllp/<YYYYMMDD>/<start>-<n>.hl7.part`) and fdatasync'ed *before* the `AA` goes back. Segments are
closed (renamed to `.hl7`) every few seconds or messages, and the ordinary LIS file connector lands them in raw,
so both paths share one parser, one ledger and one quarantine. A message the feed cannot take gets `AE`
(malformed: stored too, so it is quarantined with its bytes on load) or `AR` (unknown sender, unsupported type,
storage failure) with the reason in MSA-3/ERR. Spool `.part` files left by a crash hold only messages that were
fsync'ed, so they are closed and loaded on the next start: nothing acknowledged is ever lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from connectors import hl7
from connectors.lis import decode
from hutong.config import PlatformConfig

START, END = b"\x0b", b"\x1c\r"
PART = ".part"


def frame(message: bytes) -> bytes:
    """Wrap one HL7 message in MLLP start/end bytes."""
    return START + message + END


def read_frames(buffer: bytearray) -> list[bytes]:
    """Remove and return every complete MLLP frame at the start of `buffer` (bytes before a start block dropped)."""
    frames = []
    while True:
        end = buffer.find(END)
        if end < 0:
            return frames
        start = buffer.find(START, 0, end)
        frames.append(bytes(buffer[start + 1 : end]) if start >= 0 else bytes(buffer[:end]))
        del buffer[: end + len(END)]


@dataclass
class _Segment:
    path: Path
    fd: int
    opened: float
    messages: int = 0
    day: str = ""  # YYYYMMDD the segment belongs to
    size: int = 0  # bytes of messages written (the file beyond is preallocated, zero-filled space)
    allocated: int = 0


def _trim(path: Path) -> None:
    """Cut a spool file back to its messages: the zero-filled preallocated tail goes (every message ends in CR)."""
    data = path.read_bytes()
    keep = len(data.rstrip(b"\0"))
    if keep != len(data):
        with path.open("r+b") as handle:
            handle.truncate(keep)
            os.fsync(handle.fileno())


@dataclass
class Spool:
    """Durable per-institution, per-day spool segments inside each institution's LIS drop folder.

    Segments are preallocated (`preallocate` bytes at a time) and written in place, so the fdatasync that must
    precede each ACK flushes the message's data blocks only, not a changed file size as well (an appending write
    costs a journal commit per fsync: ≈0.5 ms against ≈0.1 ms here). A closed segment is cut back to its
    messages; a segment a crash left open is cut back on recovery (the tail is zeros, no message holds a NUL).
    """

    folders: dict[str, Path]  # org_code -> LIS drop folder
    rotate_messages: int = 5000
    rotate_seconds: float = 5.0
    preallocate: int = 8 << 20
    _open: dict[str, _Segment] = field(default_factory=dict)
    _seq: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def recover(self) -> list[Path]:
        """Close spool segments a previous process left open (their content was fsync'ed before any ACK)."""
        closed = []
        for folder in self.folders.values():
            for part in (folder / "mllp").glob(f"*/*{PART}"):
                _trim(part)
                target = part.with_name(part.name.removesuffix(PART))
                part.rename(target)
                closed.append(target)
        return closed

    def _segment(self, org_code: str, now: datetime) -> _Segment:
        current = self._open.get(org_code)
        day = f"{now:%Y%m%d}"
        if current is not None and current.day != day:
            self._close(org_code)
            current = None
        if current is None:
            day_folder = self.folders[org_code] / "mllp" / day
            day_folder.mkdir(parents=True, exist_ok=True)
            self._seq += 1
            path = day_folder / f"{now:%H%M%S}-{os.getpid()}-{self._seq:06d}.hl7{PART}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            current = self._open[org_code] = _Segment(path, fd, time.monotonic(), day=day)
            _fsync_dir(day_folder)  # the new name itself survives a crash
        return current

    def append(self, org_code: str, messages: list[bytes], now: datetime | None = None) -> None:
        """Append messages and make them durable (fdatasync) before returning."""
        data = b"".join(m if m.endswith(b"\r") else m + b"\r" for m in messages)
        with self._lock:
            segment = self._segment(org_code, now or datetime.now())
            if segment.size + len(data) > segment.allocated:
                grow = max(self.preallocate, len(data))
                os.posix_fallocate(segment.fd, segment.allocated, grow)
                segment.allocated += grow
            written = 0
            while written < len(data):
                written += os.pwrite(segment.fd, data[written:], segment.size + written)
            os.fdatasync(segment.fd)
            segment.size += len(data)
            segment.messages += len(messages)
            if segment.messages >= self.rotate_messages:
                self._close(org_code)

    def _close(self, org_code: str) -> None:
        segment = self._open.pop(org_code)
        os.ftruncate(segment.fd, segment.size)
        os.fsync(segment.fd)
        os.close(segment.fd)
        segment.path.rename(segment.path.with_name(segment.path.name.removesuffix(PART)))

    def rotate(self, force: bool = False) -> int:
        """Close segments older than `rotate_seconds` (all when `force`); returns how many were closed."""
        with self._lock:
            due = [o for o, s in self._open.items() if force or time.monotonic() - s.opened >= self.rotate_seconds]
            for org_code in due:
                self._close(org_code)
            return len(due)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class Outcome:
    """What the listener did with one message."""

    code: str  # AA / AE / AR
    org_code: str | None
    error_code: str = ""
    reason: str = ""


@dataclass
class MllpListener:
    """HL7 v2 over MLLP on `host:port`; routes by MSH-4 (sending facility = org code or short name)."""

    spool: Spool
    facilities: dict[str, str]  # MSH-4 value -> org_code
    host: str = "127.0.0.1"
    port: int = 2575
    rejected_log: Path | None = None
    on_outcome: Callable[[Outcome], None] | None = None
    received: int = 0
    stored: int = 0

    def judge(self, data: bytes) -> tuple[Outcome, hl7.Message | None]:
        """Decide AA/AE/AR for one framed message (before storing it)."""
        try:
            text, _ = decode(data)
        except UnicodeDecodeError as exc:
            return Outcome("AR", None, "hl7_undecodable", f"neither UTF-8 nor GB18030: {exc}"), None
        items = hl7.split_messages(text)
        message = next((m for m in items if isinstance(m, hl7.Message)), None)
        if message is None:
            return Outcome("AR", None, "hl7_missing_msh", "no MSH segment: not an HL7 v2 message"), None
        facility = message.get(message.segments[0], hl7.MSH_FACILITY) or ""
        org_code = self.facilities.get(facility)
        if org_code is None:
            return Outcome("AR", None, "unknown_facility", f"MSH-4 sending facility {facility!r} is not an "
                           "institution with an LIS source in this platform"), message  # fmt: skip
        if len(items) != 1:
            return Outcome("AE", org_code, "hl7_missing_msh", "segments after the results belong to no message "
                           "(one patient per message)"), message  # fmt: skip
        issue = hl7.problem(message)
        if issue is not None:
            code = "AR" if issue[0] == "hl7_unsupported_type" else "AE"
            return Outcome(code, org_code, issue[0], issue[1]), message
        return Outcome("AA", org_code), message

    def handle_frames(self, frames: list[bytes]) -> list[bytes]:
        """Judge, durably store and acknowledge a run of frames from one connection (one fsync per institution)."""
        judged = [self.judge(data) for data in frames]
        self.received += len(frames)
        by_org: dict[str, list[bytes]] = {}
        for (outcome, _), data in zip(judged, frames, strict=True):
            if outcome.org_code is not None and outcome.code != "AR":
                by_org.setdefault(outcome.org_code, []).append(data)
        failed: dict[str, str] = {}
        for org_code, messages in by_org.items():
            try:
                self.spool.append(org_code, messages)
                self.stored += len(messages)
            except OSError as exc:
                failed[org_code] = f"could not store the message durably: {exc}"
        acks = []
        for (outcome, message), data in zip(judged, frames, strict=True):
            if outcome.org_code in failed and outcome.code != "AR":
                outcome = Outcome("AR", outcome.org_code, "storage_failed", failed[outcome.org_code])
            if outcome.code == "AR":
                self._log_rejected(outcome, data)
            if self.on_outcome:
                self.on_outcome(outcome)
            acks.append(hl7.ack(message, outcome.code, outcome.reason, outcome.error_code).encode("utf-8"))
        return acks

    def _log_rejected(self, outcome: Outcome, data: bytes) -> None:
        """Messages refused outright keep their bytes and reason in a JSON-lines log beside the spool."""
        if self.rejected_log is None:
            return
        self.rejected_log.parent.mkdir(parents=True, exist_ok=True)
        entry = {"at": datetime.now().isoformat(timespec="seconds"), "org_code": outcome.org_code,
                 "error_code": outcome.error_code, "reason": outcome.reason, "message": data.hex()}  # fmt: skip
        with self.rejected_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        try:
            while True:
                chunk = await reader.read(1 << 16)
                if not chunk:
                    break
                buffer.extend(chunk)
                frames = read_frames(buffer)
                if frames:
                    writer.write(b"".join(frame(ack) for ack in self.handle_frames(frames)))
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _rotator(self) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.spool.rotate_seconds / 2))
            self.spool.rotate()

    async def serve(self, ready: threading.Event | None = None, stop: asyncio.Event | None = None) -> None:
        """Listen until `stop` is set (or forever); closes every open spool segment on the way out."""
        self.spool.recover()
        server = await asyncio.start_server(self._connection, self.host, self.port)
        if self.port == 0:
            self.port = server.sockets[0].getsockname()[1]
        rotator = asyncio.create_task(self._rotator())
        if ready is not None:
            ready.set()
        try:
            async with server:
                if stop is None:
                    await server.serve_forever()
                else:
                    await stop.wait()
        finally:
            rotator.cancel()
            self.spool.rotate(force=True)


class ListenerThread:
    """Run an MllpListener in a background thread (tests, benchmarks, the CLI's serve loop)."""

    def __init__(self, listener: MllpListener) -> None:
        self.listener = listener
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        self._loop.run_until_complete(self.listener.serve(self._ready, self._stop))

    def __enter__(self) -> MllpListener:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"MLLP listener did not start on {self.listener.host}:{self.listener.port}")
        return self.listener

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def listener_for(
    config: PlatformConfig, host: str = "127.0.0.1", port: int = 2575, **spool_options: float
) -> MllpListener:
    """A listener for every institution of the platform with an LIS source (facility = org code or short name)."""
    folders, facilities = {}, {}
    for inst in config.with_source("lis"):
        folders[inst.org_code] = Path(str(inst.sources["lis"].get("drop_dir")))
        facilities[inst.org_code] = facilities[inst.short] = inst.org_code
    spool = Spool(folders, **spool_options)  # type: ignore[arg-type]
    return MllpListener(spool, facilities, host, port, rejected_log=config.data_dir / "mllp" / "rejected.jsonl")
