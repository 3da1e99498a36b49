"""LIS connector: HL7 v2 files and MLLP land messages, orders and results; bad messages are quarantined."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

import synthetic
from connectors import hl7, hl7_reference
from connectors.lis import parse_text, parse_text_per_message, parse_texts
from connectors.mllp import ListenerThread, listener_for
from connectors.registry import ingest
from synthetic.mllp import send, split_batch
from tests.conftest import write_config
from warehouse import Warehouse, ensure_core

SHORTS = ("RMYY", "ZYY", "QLWSY")


def _county(tmp_path: Path, url: str):
    config = write_config(tmp_path, url, shorts=SHORTS)
    synthetic.generate(config, size="tiny", out_dir=config.data_dir, seed=7, kinds=("lis",))
    return config


def _truth(config, entity: str = "lab_result") -> Counter:
    with (config.data_dir / "truth" / "source_records.csv").open(encoding="utf-8") as handle:
        return Counter(r["org_code"] for r in csv.DictReader(handle) if r["entity"] == entity)


def _defects(config, kind: str = "lis") -> list[dict[str, str]]:
    with (config.data_dir / "truth" / "defects.csv").open(encoding="utf-8") as handle:
        return [r for r in csv.DictReader(handle) if r["source_kind"] == kind]


def test_fast_parser_agrees_with_hl7apy(tmp_path):
    config = _county(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    checked = 0
    for path in sorted(config.data_dir.rglob("*.hl7"))[:40]:
        for item in hl7.split_messages(path.read_bytes().decode("utf-8")):
            if isinstance(item, hl7.Message) and not hl7.problem(item):
                assert hl7.extract(item) == hl7_reference.extract(item.text), f"{path.name} {item.control_id}"
                checked += 1
    assert checked > 50
    # escapes, repetitions, subcomponents, an ADT without results
    odd = (
        "MSH|^~\\&|LIS|ORG|HUTONG|HUTONG|20261008141800||ADT^A08^ADT_A01|C1|P|2.5\r"
        "PID|1||P1~P2^^^HIS&ORG2&L^PI||王\\S\\小^明||19800101|F|||河南\\F\\郑州||139~138|||||||410182198001010022\r"
        "PV1|1|I|W01^^^ORG||||D1^张\\T\\三||||||||||||V9\r"
    )
    message = hl7.split_messages(odd)[0]
    assert isinstance(message, hl7.Message)
    fast = hl7.extract(message)
    assert fast == hl7_reference.extract(message.text)
    assert fast[0]["family_name"] == "王^小" and fast[0]["address"] == "河南|郑州" and fast[0]["patient_id"] == "P1"
    assert fast[0]["attending_doctor"] == "D1" and fast[0]["visit_number"] == "V9" and fast[1] == [] == fast[2]


def _rows(frame) -> list[tuple]:
    return sorted(frame.select(sorted(frame.columns)).iter_rows(), key=str)


def test_columnar_path_equals_per_message_path(tmp_path):
    config = _county(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    files = [(p.read_bytes().decode("utf-8"), p.name) for p in sorted(config.data_dir.rglob("*.hl7"))[:30]]
    odd = (
        "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|E1|P|2.5\rPID|1||P1||王\\S\\小^明\rOBX|1|ST|A^B||x\\F\\y\r"
        "MSH|^~\\&|LIS|ORG|H|H|20261008||ORU^R01|E2|P|2.5\rPID|1||P2~P3^^^H&O&L\rOBR|1\rOBX|1|NM|A^B^L^1-1^N^LN||1\r"
        "OBX|2|NM|C||2\rOBR|2\rOBX|1|NM|D||3\rPID|1||LOST\rOBX|1|NM|A||9\r"
        "MSH#^~\\&#LIS#ORG#H#H#20261008##ORU^R01#E3#P#2.5\rPID#1##P4\r"
    )
    files.append((odd, "odd.hl7"))
    columnar = parse_texts(files, "ORG")
    for (text, rel), fast in zip(files, columnar, strict=True):
        slow = parse_text_per_message(text, rel, "ORG")
        assert fast.rows_in == slow.rows_in, rel
        assert [(q.origin, q.error_code, q.original) for q in fast.quarantined] == [
            (q.origin, q.error_code, q.original) for q in slow.quarantined
        ]
        for table, frame in slow.tables.items():
            assert _rows(fast.tables[table]) == _rows(frame), (rel, table)
    odd_rows = columnar[-1].tables["lis_message"]
    assert sorted(odd_rows["control_id"].to_list()) == ["E1", "E2", "E3"]  # E3 uses '#' as field separator
    assert columnar[-1].tables["lis_result"].filter(pl.col("control_id") == "E2")["order_index"].to_list() == [
        "1", "1", "2"
    ]  # fmt: skip


def test_group_parse_of_several_institutions_equals_per_message_path(tmp_path):
    from connectors.lis import LisFiles

    config = _county(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    files = []
    for inst in config.institutions:
        folder = config.data_dir / "sources" / inst.org_code / "lis"
        files += [(p, p.relative_to(folder).as_posix(), p.read_bytes(), inst.org_code)
                  for p in sorted(folder.rglob("*.hl7"))[:8]]  # fmt: skip
    files.insert(3, (tmp_path / "bad.hl7", "bad.hl7", b"MSH|^~\\&|\xff\xfe\x80\x81\r", files[0][3]))
    group = LisFiles().parse_group(files)
    assert len(group.files) == len(files) and len({org for *_, org in files}) == len(SHORTS)
    assert group.files[3].rejected is not None and group.files[3].rejected[0] == "hl7_undecodable"
    for index, (_, rel, data, org) in enumerate(files):
        if index == 3:
            assert all(frame.filter(pl.col("_file") == index).height == 0 for frame in group.tables.values())
            continue
        slow = parse_text_per_message(data.decode("utf-8"), rel, org)
        parsed = group.files[index]
        assert (parsed.rows_in, parsed.rows_out) == (slow.rows_in, slow.tables["lis_message"].height), rel
        assert [q.original for q in parsed.quarantined] == [q.original for q in slow.quarantined]
        for table, frame in slow.tables.items():
            mine = group.tables[table].filter(pl.col("_file") == index).drop("_file")
            assert _rows(mine) == _rows(frame), (rel, table)


def test_spool_keeps_exactly_the_messages_after_close_and_after_a_crash(tmp_path):
    from connectors.mllp import Spool

    messages = [b"MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C%d|P|2.5\rPID|1||P1\r" % n for n in range(5)]
    spool = Spool({"ORG": tmp_path}, preallocate=4096)
    spool.append("ORG", messages[:2])
    spool.append("ORG", [b"x" * 5000])  # larger than the preallocated space: grows
    (part,) = tmp_path.rglob("*.part")
    assert part.stat().st_size > 2 * len(messages[0]) + 5001  # preallocated, zero-filled tail
    spool.rotate(force=True)
    (closed,) = tmp_path.rglob("*.hl7")
    assert closed.read_bytes() == messages[0] + messages[1] + b"x" * 5000 + b"\r"
    crashed = Spool({"ORG": tmp_path}, preallocate=1 << 20)
    crashed.append("ORG", messages[2:])  # acknowledged, then the process dies without closing the segment
    recovered = Spool({"ORG": tmp_path}).recover()
    assert len(recovered) == 1 and recovered[0].read_bytes() == b"".join(messages[2:])
    assert not list(tmp_path.rglob("*.part"))


def test_bad_messages_are_quarantined_and_the_rest_lands():
    good = "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C{n}|P|2.5\rPID|1||P{n}\rOBR|1|X\rOBX|1|NM|A^B||1.5\r"
    text = (
        good.format(n=1)
        + "PID|1||LOST\rOBR|1|Y\rOBX|1|NM|A^B||9\r"  # a message whose MSH was lost: segments after results
        + "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01||P|2.5\rPID|1||P3\r"  # no control id
        + "MSH|^~\\&|LIS|ORG|H|H|20261008141800||QRY^Q01|C4|P|2.5\r"  # unsupported type
        + "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C5|P|2.5\rpid|1\r"  # broken segment id
        + good.format(n=6)
    )
    parsed = parse_text(text, "f.hl7", "ORG")
    assert parsed.rows_in == 6
    assert parsed.tables["lis_message"]["control_id"].to_list() == ["C1", "C6"]
    assert parsed.tables["lis_result"]["_source_key"].to_list() == ["C1:1:1", "C6:1:1"]
    codes = [q.error_code for q in parsed.quarantined]
    assert codes == ["hl7_missing_msh", "hl7_no_control_id", "hl7_unsupported_type", "hl7_bad_segment"]
    assert parsed.quarantined[0].original == b"PID|1||LOST\rOBR|1|Y\rOBX|1|NM|A^B||9\r"
    assert all(q.message for q in parsed.quarantined)
    # the leftovers of a file go through the per-message path together: each keeps its own line in the file
    origins = [q.origin for q in parsed.quarantined]
    assert origins[:2] == ["f.hl7#line 5", "f.hl7#line 8"]
    assert origins == [q.origin for q in parse_text_per_message(text, "f.hl7", "ORG").quarantined]


@pytest.mark.parametrize("encoding", ["gb18030"])
def test_gbk_files_decode(tmp_path, encoding):
    from connectors.lis import LisFiles

    text = "MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C1|P|2.5\rPID|1||P1||张^三\rOBX|1|ST|A^白细胞||正常\r"
    parsed = LisFiles().parse(tmp_path / "x.hl7", "x.hl7", text.encode(encoding), "ORG")
    assert parsed.tables["lis_message"]["family_name"].to_list() == ["张"]
    assert parsed.tables["lis_result"]["value"].to_list() == ["正常"]


def test_files_land_and_match_truth(tmp_path, warehouse_url):
    config = _county(tmp_path, warehouse_url)
    truth = _truth(config)
    malformed = Counter(d["org_code"] for d in _defects(config) if d["defect_type"] == "malformed_hl7")
    obx = Counter()
    for inst in config.institutions:
        for path in (config.data_dir / "sources" / inst.org_code / "lis").rglob("*.hl7"):
            obx[inst.org_code] += path.read_bytes().count(b"\rOBX|")
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        runs = ingest(wh, config, kinds=["lis"])
        assert not [r.error for r in runs if r.error]
        for inst in config.institutions:
            org = inst.org_code
            messages = wh.scalar("SELECT count(*) FROM raw.lis_message WHERE _org_code = ?", [org])
            bad = wh.scalar("SELECT count(*) FROM ops.quarantine WHERE org_code = ? AND source_kind = 'lis'", [org])
            assert messages + bad == truth[org], inst.short
            assert bad == malformed[org]
            results = wh.scalar("SELECT count(*) FROM raw.lis_result WHERE _org_code = ?", [org])
            lost = wh.query("SELECT original FROM ops.quarantine WHERE org_code = ?", [org])
            assert results + sum(bytes(o).count(b"\rOBX|") + bytes(o).startswith(b"OBX|") for (o,) in lost) == obx[org]
            reconciled = wh.query(
                "SELECT sum(rows_in), sum(rows_loaded + rows_unchanged + rows_quarantined) FROM ops.ingest_batch "
                "WHERE org_code = ? AND source_kind = 'lis'",
                [org],
            )[0]
            assert reconciled[0] == reconciled[1] == truth[org]
        reasons = wh.query("SELECT error_code, message, origin FROM ops.quarantine WHERE source_kind = 'lis'")
        assert reasons and all(code == "hl7_missing_msh" and "MSH" in msg for code, msg, _ in reasons)
        loinc = wh.scalar("SELECT count(*) FROM raw.lis_result WHERE alt_coding_system = 'LN'")
        assert loinc > 0.9 * wh.scalar("SELECT count(*) FROM raw.lis_result")
        on_time = wh.query("SELECT max(late_minutes) FROM ops.source_health WHERE source_kind = 'lis'")[0][0]
        assert on_time == 0  # daily batch files arrive at 23:59
        before = wh.scalar("SELECT count(*) FROM raw.lis_result")
        again = ingest(wh, config, kinds=["lis"])
        assert sum(r.rows_loaded for r in again) == 0 and sum(r.files_skipped for r in again) > 0
        assert wh.scalar("SELECT count(*) FROM raw.lis_result") == before


def test_a_changed_file_lands_only_its_new_messages(tmp_path):
    config = _county(tmp_path, f"duckdb:///{tmp_path}/w.duckdb")
    folder = config.data_dir / "sources" / config.institution("RMYY").org_code / "lis"
    path = sorted(folder.rglob("*.hl7"))[0]
    with Warehouse(config.warehouse_url) as wh:
        ensure_core(wh)
        ingest(wh, config, orgs=["RMYY"], kinds=["lis"])
        extra = "MSH|^~\\&|LIS|X|H|H|20261008141800||ORU^R01|NEW1|P|2.5\rPID|1||P9\rOBX|1|NM|A^B||2\r"
        path.write_bytes(path.read_bytes() + extra.encode())
        runs = ingest(wh, config, orgs=["RMYY"], kinds=["lis"])
        assert sum(r.rows_loaded for r in runs) == 1
        assert wh.scalar("SELECT count(*) FROM raw.lis_message WHERE control_id = 'NEW1'") == 1


def test_mllp_acks_after_durable_storage_and_lands(tmp_path, warehouse_url):
    config = _county(tmp_path, warehouse_url)
    org = config.institution("RMYY").org_code
    folder = config.data_dir / "sources" / org / "lis"
    messages = [m for f in sorted(folder.rglob("*.hl7")) for m in split_batch(f.read_bytes())]
    good = [m for m in messages if m.startswith(b"MSH|") and b"\rPID|1||" in m][:60]
    for f in folder.rglob("*.hl7"):  # the feed now arrives over MLLP only
        f.unlink()
    unknown = good[0].replace(org.encode(), b"NOT-AN-ORG", 1).replace(b"|RMYY2", b"|XXXX2", 1)
    unsupported = good[1].replace(b"ORU^R01", b"QRY^Q01", 1)
    no_control = b"MSH|^~\\&|LIS|" + org.encode() + b"|H|H|20261008141800||ORU^R01||P|2.5\rPID|1||P1\r"
    listener = listener_for(config, port=0, rotate_seconds=60)
    with ListenerThread(listener) as running:
        codes = send("127.0.0.1", running.port, [*good, unknown, unsupported, no_control])
        assert codes == ["AA"] * len(good) + ["AR", "AR", "AE"]
        # acknowledged means on disk already: the open spool segment holds every AA'd message
        spooled = b"".join(p.read_bytes() for p in folder.rglob("*.part"))
        assert all(m in spooled for m in good)
    assert not list(folder.rglob("*.part"))  # closed on shutdown
    rejected = (config.data_dir / "mllp" / "rejected.jsonl").read_text(encoding="utf-8")
    assert "unknown_facility" in rejected and "hl7_unsupported_type" in rejected
    with Warehouse(warehouse_url) as wh:
        ensure_core(wh)
        ingest(wh, config, orgs=["RMYY"], kinds=["lis"])
        assert wh.scalar("SELECT count(*) FROM raw.lis_message WHERE _org_code = ?", [org]) == len(good)
        codes = [c for (c,) in wh.query("SELECT error_code FROM ops.quarantine WHERE org_code = ?", [org])]
        assert codes == ["hl7_no_control_id"]


def test_ack_is_valid_hl7():
    message = hl7.split_messages("MSH|^~\\&|LIS|ORG|H|H|20261008141800||ORU^R01|C7|P|2.5\rPID|1||P1\r")[0]
    assert isinstance(message, hl7.Message)
    for code, reason in (("AA", ""), ("AE", "MSH-10 | missing"), ("AR", "unknown ^ sender")):
        ack = hl7_reference.parse(hl7.ack(message, code, reason, "hl7_no_control_id"))
        msa = next(s for s in ack.children if s.name == "MSA")
        assert msa.msa_1.to_er7() == code and msa.msa_2.to_er7() == "C7"
        if code != "AA":
            err = next(s for s in ack.children if s.name == "ERR")
            assert err.err_3.to_er7().startswith("101^") and err.err_4.to_er7() == "E"


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import connectors.drop as drop
    from connectors.registry import ingest
    from hutong.config import load_config
    from warehouse import Warehouse, ensure_core

    commits, groups = [0], [0]  # transactions committed; groups landed in the open transaction
    real_commit, real_flush, real_append = drop._Transactions.commit, drop._flush, drop.append_raw
    def commit(self):
        real_commit(self)
        commits[0], groups[0] = commits[0] + 1, 0
    def flush(*args):
        real_flush(*args)
        groups[0] += 1
    def dying_append(wh, table, frame, batch_id, ingested_at):
        result = real_append(wh, table, frame, batch_id, ingested_at)
        if commits[0] and groups[0]:  # one transaction committed; the open one holds a group and half the next
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    drop._Transactions.commit, drop._flush, drop.append_raw = commit, flush, dying_append
    drop.GROUP_BYTES = int(sys.argv[2])
    drop.TX_BYTES = 3 * drop.GROUP_BYTES  # several groups per transaction
    config = load_config(sys.argv[1])
    with Warehouse(config.warehouse_url) as wh:
        ensure_core(wh)
        ingest(wh, config, kinds=["lis"])
    """
)


def test_killed_mid_batch_then_rerun_loses_nothing_and_duplicates_nothing(tmp_path, warehouse_url):
    config = _county(tmp_path, warehouse_url)
    truth = _truth(config)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-c", KILLER, str(config.path), "6000"], env=env, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    with Warehouse(warehouse_url) as wh:
        partial = wh.scalar("SELECT count(*) FROM raw.lis_message")
        assert 0 < partial < sum(truth.values())  # the first transaction committed, the second did not
        ingest(wh, config, kinds=["lis"])
        for inst in config.institutions:
            org = inst.org_code
            landed = wh.scalar("SELECT count(*) FROM raw.lis_message WHERE _org_code = ?", [org])
            distinct = wh.scalar("SELECT count(DISTINCT _source_key) FROM raw.lis_message WHERE _org_code = ?", [org])
            bad = wh.scalar("SELECT count(*) FROM ops.quarantine WHERE org_code = ?", [org])
            assert landed == distinct and landed + bad == truth[org]
        dup_results = wh.scalar(
            "SELECT count(*) FROM (SELECT _org_code, _source_key FROM raw.lis_result "
            "GROUP BY _org_code, _source_key HAVING count(*) > 1) d"
        )
        assert dup_results == 0
