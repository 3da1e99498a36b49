"""MLLP (Minimal Lower Layer Protocol) sender: how a hospital LIS pushes HL7 v2 messages to an interface engine."""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from pathlib import Path

START, END = b"\x0b", b"\x1c\r"


def frame(message: bytes) -> bytes:
    """Wrap one HL7 message in MLLP start/end bytes."""
    return START + message + END


def split_batch(data: bytes) -> list[bytes]:
    """The messages of an HL7 batch file (FHS/BHS … BTS/FTS) or of a single-message file."""
    text = data.replace(b"\r\n", b"\r").replace(b"\n", b"\r")
    parts = text.split(b"\rMSH|")
    head, rest = parts[0], parts[1:]
    messages = [b"MSH|" + p for p in rest]
    if head.startswith(b"MSH|"):
        messages.insert(0, head)
    cleaned = []
    for m in messages:
        segments = [s for s in m.split(b"\r") if s and not s.startswith((b"BTS|", b"FTS|", b"BHS|", b"FHS|"))]
        cleaned.append(b"\r".join(segments) + b"\r")
    return cleaned


def batch_files(folder: Path) -> Iterator[Path]:
    yield from sorted(folder.rglob("*.hl7"))


def _read_frame(sock: socket.socket, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(END)
        if end >= 0:
            start = buffer.find(START)
            payload = bytes(buffer[start + 1 : end])
            del buffer[: end + len(END)]
            return payload
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("MLLP peer closed the connection before acknowledging")
        buffer.extend(chunk)


def ack_code(ack: bytes) -> str:
    """MSA-1 of an acknowledgement (AA / AE / AR)."""
    for segment in ack.split(b"\r"):
        if segment.startswith(b"MSA|"):
            return segment.split(b"|")[1].decode()
    return ""


def send(host: str, port: int, messages: Iterable[str | bytes], timeout: float = 10) -> list[str]:
    """Send each message over one MLLP connection, waiting for its ACK; returns the MSA-1 codes in order."""
    codes = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        buffer = bytearray()
        for message in messages:
            data = message.encode("utf-8") if isinstance(message, str) else message
            sock.sendall(frame(data))
            codes.append(ack_code(_read_frame(sock, buffer)))
    return codes
