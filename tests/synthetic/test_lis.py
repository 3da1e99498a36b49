"""Synthetic LIS: ORU^R01 batch files parse with hl7apy, quote the HIS ids, carry labelled defects, and can be
pushed over MLLP."""

from __future__ import annotations

import csv
import socketserver
import sqlite3
import threading
from pathlib import Path
from typing import ClassVar

import pytest
from hl7apy.parser import parse_message

import synthetic
from hutong.config import load_config
from synthetic.mllp import END, START, send, split_batch


@pytest.fixture(scope="module")
def county(tmp_path_factory):
    return synthetic.generate(load_config(), size="tiny", out_dir=tmp_path_factory.mktemp("lis"), seed=21,
                              kinds=("lis",))  # fmt: skip


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _messages(county) -> dict[tuple[str, str], tuple[str, bytes]]:
    """(org, control id) → (relative path, message bytes)."""
    found = {}
    for org in county.his:
        root = county.out_dir / "sources" / org / "lis"
        for path in sorted(root.rglob("*.hl7")):
            rel = path.relative_to(root).as_posix()
            for message in split_batch(path.read_bytes()):
                msh = next((s for s in message.split(b"\r") if s.startswith(b"MSH|")), None)
                control = msh.split(b"|")[9].decode() if msh else None
                if control is None:  # a malformed message has no MSH: identify it by its ORC placer number
                    orc = next(s for s in message.split(b"\r") if s.startswith(b"ORC|"))
                    control = orc.split(b"|")[2].decode()[:-1]
                found[(org, control)] = (rel, message)
    return found


def test_messages_parse_and_quote_his_ids(county):
    messages = _messages(county)
    defects = {(d["org_code"], d["local_key"]): d["defect_type"] for d in _read(county.truth_dir / "defects.csv")
               if d["source_kind"] == "lis"}  # fmt: skip
    assert len(messages) > 300
    checked = 0
    for (org, control), (_, raw) in messages.items():
        if (org, control) in defects:
            continue
        message = parse_message(raw.decode("utf-8"), find_groups=False)
        assert message.msh.msh_10.value == control and message.msh.msh_12.value == "2.5"
        pid = message.pid.pid_3.value.split("^")[0]
        visit = message.pv1.pv1_19.value
        his = county.out_dir / "sources" / org / "his.sqlite"
        with sqlite3.connect(his) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "MZ_GHXX" in tables:
                row = conn.execute("SELECT BRID FROM MZ_GHXX WHERE GHID = ? UNION ALL SELECT BRID FROM ZY_BAXX "
                                   "WHERE ZYH = ?", [visit, visit]).fetchone()  # fmt: skip
            else:
                row = conn.execute("SELECT patient_id FROM visit WHERE visit_id = ?", [visit]).fetchone()
        assert row == (pid,)
        checked += 1
    assert checked > 250
    truth = {(r["org_code"], r["local_key"]) for r in _read(county.truth_dir / "source_records.csv")
             if r["source_system"] == "LIS"}  # fmt: skip
    assert truth == set(messages)


def test_labelled_defects_are_in_the_messages(county):
    messages = _messages(county)
    lis_defects = [d for d in _read(county.truth_dir / "defects.csv") if d["source_kind"] == "lis"]
    assert {d["defect_type"] for d in lis_defects} >= {"unmapped_code", "out_of_range"}
    for d in lis_defects:
        rel, raw = messages[(d["org_code"], d["local_key"])]
        assert rel == d["source_table"]
        segments = {s.split(b"|")[0]: s for s in reversed(raw.split(b"\r")) if s}
        if d["defect_type"] == "malformed_hl7":
            assert b"MSH" not in segments
        elif d["defect_type"] == "missing_required":
            assert segments[b"PID"].split(b"|")[3] == b""
        elif d["defect_type"] == "unmapped_code":
            obx1 = next(s for s in raw.split(b"\r") if s.startswith(b"OBX|1|"))
            assert b"^LN" not in obx1.split(b"|")[3] and obx1.split(b"|")[3].startswith(b"L99")
        elif d["defect_type"] == "out_of_range":
            obx1 = next(s for s in raw.split(b"\r") if s.startswith(b"OBX|1|"))
            value = float(obx1.split(b"|")[5])
            assert value < 0 or value > 999


def test_same_seed_same_bytes(county, tmp_path):
    again = synthetic.generate(load_config(), size="tiny", out_dir=tmp_path, seed=21, kinds=("lis",))
    for org in list(county.his)[:5]:
        for path in sorted((county.out_dir / "sources" / org / "lis").rglob("*.hl7")):
            twin = again.out_dir / path.relative_to(county.out_dir)
            assert path.read_bytes() == twin.read_bytes()


class _Listener(socketserver.BaseRequestHandler):
    received: ClassVar[list[bytes]] = []

    def handle(self) -> None:
        buffer = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            buffer += chunk
            while END in buffer:
                payload, buffer = buffer.split(END, 1)
                message = payload.lstrip(START)
                self.received.append(message)
                control = message.split(b"\r")[0].split(b"|")[9]
                ack = b"MSH|^~\\&|HUTONG|HUTONG|LIS|X|20261124000000||ACK^R01^ACK|A" + control + b"|P|2.5\rMSA|AA|"
                self.request.sendall(START + ack + control + b"\r" + END)


def test_mllp_round_trip(county):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Listener)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        messages = [raw for (_, raw) in list(_messages(county).values())[:50] if raw.startswith(b"MSH|")]
        codes = send("127.0.0.1", server.server_address[1], messages)
    finally:
        server.shutdown()
        server.server_close()
    assert codes == ["AA"] * len(messages)
    assert _Listener.received[-len(messages) :] == messages
