"""Benchmark: connector throughput on a synthetic county, each measurement in its own process (own peak RSS).

    .venv/bin/python bench/bench_ingest.py [size] [part ...] [--workdir DIR [--reuse]]   (default: medium, every part)

`--workdir DIR` keeps the generated county in DIR (e.g. /work/cache/<name>/bench-medium) instead of a temporary
folder; with `--reuse` a county generated there before (same size, covering the parts' kinds) is used again
instead of being regenerated (the MLLP part spools into its own folder and leaves the LIS drop files alone).

Parts: `lis` (HL7 files → raw, with the hl7apy per-message baseline measured on a sample in the same run),
`mllp` (one MLLP connection, AA only after fdatasync, then the spool landed in raw), `his` (MariaDB → raw),
`emr` (CDA/FHIR documents), `pacs` (DICOM headers + reports), `public_health` (CSV/Excel rows).
The county is generated once (HIS into MariaDB databases `hutong_bench_<org_code>`, dropped at the end).
Targets (issue 4, 2 cores): HL7 ≥ 20,000 messages/s from files, ≥ 2,000/s over MLLP with durable ACK, HIS ≥ 50,000
rows/s, peak RSS < 2 GB whatever the input size.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MARIADB = os.environ.get("HUTONG_BENCH_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
PARTS = ("his", "lis", "mllp", "emr", "pacs", "public_health")
HL7APY_SAMPLE = 300
MLLP_MESSAGES = 20_000
MLLP_WINDOW = 64


def _config(workdir: Path) -> Path:
    """The shipped county with a private data dir and warehouse; HIS in MariaDB."""
    raw = yaml.safe_load((ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(workdir / "data")
    raw["warehouse"]["url"] = f"duckdb:///{workdir}/warehouse.duckdb"
    raw["source_defaults"]["his"]["url"] = f"{MARIADB}/hutong_bench_{{org_code}}?charset=utf8mb4"
    path = workdir / "county.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fresh_warehouse(config_path: Path) -> None:
    from hutong.config import load_config

    target = Path(load_config(config_path).warehouse_url.removeprefix("duckdb:///"))
    for path in (target, target.with_name(target.name + ".wal")):
        path.unlink(missing_ok=True)


def run_part(part: str, config_path: Path) -> dict[str, object]:
    """One measurement (runs in a child process)."""
    from connectors.registry import ingest
    from hutong.config import load_config
    from warehouse import Warehouse, ensure_core

    _fresh_warehouse(config_path)
    config = load_config(config_path)
    out: dict[str, object] = {"part": part}
    if part == "mllp":
        return _mllp(config)
    landing = _time_landing() if part == "lis" else None
    with Warehouse(config.warehouse_url) as wh:
        ensure_core(wh)
        started, cpu = time.perf_counter(), _cpu()
        runs = ingest(wh, config, kinds=[part])
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
        errors = [r.error for r in runs if r.error]
        out |= {"records": sum(r.rows_in for r in runs), "new": sum(r.rows_loaded for r in runs),
                "quarantined": sum(r.rows_quarantined for r in runs), "seconds": seconds, "cpu_seconds": cpu,
                "errors": errors}  # fmt: skip
        if part == "lis":
            out["results"] = wh.count("raw.lis_result")
            out["append_seconds"] = landing[0] if landing else 0.0
    if part == "lis":
        out["hl7apy_per_s"] = _hl7apy_baseline(config)
    out["peak_rss_mib"] = _peak_mib()
    return out


def _time_landing() -> list[float]:
    """Wall seconds the driver's main thread spends in `append_raw` (DuckDB hashing, dedup, insert), summed."""
    import connectors.drop as drop

    spent = [0.0]
    real = drop.append_raw

    def timed(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            return real(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            spent[0] += time.perf_counter() - started

    drop.append_raw = timed  # type: ignore[assignment]
    return spent


def _hl7apy_baseline(config: object) -> float:
    """Messages/s for hl7apy parsing + the same field extraction, on a sample of the county's messages."""
    from connectors import hl7, hl7_reference

    sample: list[str] = []
    for path in sorted((Path(config.data_dir) / "sources").rglob("*.hl7")):  # type: ignore[attr-defined]
        sample += [m.text for m in hl7.split_messages(path.read_text(encoding="utf-8"))
                   if isinstance(m, hl7.Message) and not hl7.problem(m)]  # fmt: skip
        if len(sample) >= HL7APY_SAMPLE:
            break
    started = time.perf_counter()
    for text in sample[:HL7APY_SAMPLE]:
        hl7_reference.extract(text)
    return len(sample[:HL7APY_SAMPLE]) / (time.perf_counter() - started)


def _spool_config(config: object, name: str = "mllp_spool") -> object:
    """The same county with every LIS drop folder moved to an empty `<name>/<org>` (MLLP is the only feed)."""
    import shutil

    from hutong.config import load_config

    path = Path(config.path)  # type: ignore[attr-defined]
    spool = path.parent / name
    shutil.rmtree(spool, ignore_errors=True)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    raw["source_defaults"]["lis"]["drop_dir"] = f"{spool}/{{org_code}}"
    target = path.with_name(f"county-{name}.yaml")
    target.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return load_config(target)


def _send_pipelined(port: int, messages: list[bytes], window: int) -> list[str]:
    """Like `synthetic.mllp.send`, but `window` messages go out before their ACKs are read (MLLP pipelining)."""
    import socket

    from synthetic.mllp import _read_frame, ack_code, frame

    codes: list[str] = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        buffer = bytearray()
        for start in range(0, len(messages), window):
            chunk = messages[start : start + window]
            sock.sendall(b"".join(frame(m) for m in chunk))
            codes += [ack_code(_read_frame(sock, buffer)) for _ in chunk]
    return codes


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mllp(config: object) -> dict[str, object]:
    """Send messages over one MLLP connection, each waiting for its ACK as a LIS does (each ACK waits for the
    fdatasync of its message), then land the spool; then the same messages pipelined (window of
    MLLP_WINDOW, one fdatasync per run of frames read together) into a second spool, for comparison."""
    from connectors.mllp import ListenerThread, listener_for
    from connectors.registry import ingest
    from synthetic.mllp import send, split_batch
    from warehouse import Warehouse, ensure_core

    messages: list[bytes] = []
    by_org: list[str] = []
    for inst in config.with_source("lis"):  # type: ignore[attr-defined]
        by_org.append(inst.org_code)
        for path in sorted(Path(str(inst.sources["lis"].get("drop_dir"))).rglob("*.hl7")):
            messages += split_batch(path.read_bytes())
        if len(messages) >= MLLP_MESSAGES:
            break
    messages = messages[:MLLP_MESSAGES]
    piped_config = _spool_config(config, "mllp_spool_pipelined")
    config = _spool_config(config)  # the feed arrives over MLLP only in this measurement
    listener = listener_for(config, port=0)  # type: ignore[arg-type]
    with ListenerThread(listener) as running:
        started, cpu = time.perf_counter(), _cpu()
        codes = send("127.0.0.1", running.port, messages)
        seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    with ListenerThread(listener_for(piped_config, port=0)) as running:  # type: ignore[arg-type]
        piped_at = time.perf_counter()
        piped = _send_pipelined(running.port, messages, MLLP_WINDOW)
        piped_seconds = time.perf_counter() - piped_at
    assert piped == codes, "pipelined ACKs differ from one-by-one ACKs"
    with Warehouse(config.warehouse_url) as wh:  # type: ignore[attr-defined]
        ensure_core(wh)
        landed_at = time.perf_counter()
        runs = ingest(wh, config, orgs=by_org, kinds=["lis"])  # type: ignore[arg-type]
        land_seconds = time.perf_counter() - landed_at
    acks = {c: codes.count(c) for c in set(codes)}
    return {"part": "mllp", "records": len(messages), "seconds": seconds, "cpu_seconds": cpu, "acks": acks,
            "pipelined_seconds": piped_seconds, "landed": sum(r.rows_loaded for r in runs),
            "land_seconds": land_seconds, "peak_rss_mib": _peak_mib()}  # fmt: skip


def _generate(config_path: Path, size: str, kinds: tuple[str, ...], reuse: bool = False) -> dict[str, object]:
    import synthetic
    from hutong.config import load_config

    marker = config_path.with_name("generated.json")
    if reuse and marker.exists():
        done = json.loads(marker.read_text(encoding="utf-8"))
        if done["size"] == size and set(kinds) <= set(done["kinds"]):
            return {"records": done["records"], "seconds": 0.0, "reused": True}
    marker.unlink(missing_ok=True)
    config = load_config(config_path)
    template = f"{MARIADB}/hutong_bench_{{org_code}}?charset=utf8mb4" if "his" in kinds else None
    started = time.perf_counter()
    summary = synthetic.generate(config, size=size, out_dir=config.data_dir, seed=20261124,
                                 his_url_template=template, kinds=kinds)  # fmt: skip
    seconds = time.perf_counter() - started
    marker.write_text(json.dumps({"size": size, "kinds": list(kinds), "records": summary.records}), encoding="utf-8")
    return {"records": summary.records, "seconds": seconds}


def _drop_mariadb(config_path: Path) -> None:
    from sqlalchemy import create_engine, text

    from hutong.config import load_config

    engine = create_engine(MARIADB)
    with engine.begin() as conn:
        for inst in load_config(config_path).institutions:
            conn.execute(text(f"DROP DATABASE IF EXISTS hutong_bench_{inst.org_code}"))
    engine.dispose()


def _row(r: dict[str, object]) -> str:
    part, seconds, records = str(r["part"]), float(r["seconds"]), int(r["records"])  # type: ignore[arg-type]
    line = f"{part:14s} {records:>11,} {seconds:>8.1f}s {records / seconds:>11,.0f}/s {r['peak_rss_mib']:>8,.0f} MiB"
    if part == "lis":
        fast = records / seconds
        line += (f"   CPU {float(r['cpu_seconds']):.1f}s; in append_raw {float(r['append_seconds']):.1f}s wall; "
                 f"results {r['results']:,}; "
                 f"hl7apy baseline {r['hl7apy_per_s']:,.0f} msg/s "
                 f"(fast path end-to-end {fast / float(r['hl7apy_per_s']):,.0f}×)")  # type: ignore[arg-type]  # fmt: skip
    if part == "mllp":
        line += (f"   one at a time, CPU {float(r['cpu_seconds']):.1f}s (client and listener); ACKs {r['acks']}; "
                 f"pipelined ({MLLP_WINDOW} in flight) {records / float(r['pipelined_seconds']):,.0f}/s; "  # type: ignore[arg-type]
                 f"spool landed {r['landed']:,} in {r['land_seconds']:.1f}s")  # fmt: skip
    if r.get("errors"):
        line += f"   ERRORS {r['errors']}"
    return line


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--part":
        print(json.dumps(run_part(sys.argv[2], Path(sys.argv[3]))))
        return
    args = sys.argv[1:]
    reuse = "--reuse" in args
    args = [a for a in args if a != "--reuse"]
    workdir = None
    if "--workdir" in args:
        at = args.index("--workdir")
        workdir = Path(args[at + 1]).resolve()
        del args[at : at + 2]
    size = args[0] if args else "medium"
    parts = tuple(args[1:]) or PARTS
    kinds = tuple(sorted({"lis" if p == "mllp" else p for p in parts}))
    with tempfile.TemporaryDirectory(prefix="hutong_bench_ingest_") as tmp:
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        config_path = _config(workdir or Path(tmp))
        try:
            gen = _generate(config_path, size, kinds, reuse=reuse)
            how = "reused" if gen.get("reused") else f"in {gen['seconds']:.0f}s"
            print(f"synthetic {size} county ({', '.join(kinds)}): {gen['records']:,} records {how}")
            print(f"{'part':14s} {'records':>11s} {'wall':>9s} {'throughput':>13s} {'peak RSS':>12s}")
            for part in [p for p in PARTS if p in parts and p != "mllp"] + (["mllp"] if "mllp" in parts else []):
                done = subprocess.run([sys.executable, __file__, "--part", part, str(config_path)], capture_output=True,
                                      text=True, cwd=ROOT)  # fmt: skip
                if done.returncode != 0:
                    print(f"{part:14s} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr else '?'}")
                    continue
                print(_row(json.loads(done.stdout.strip().splitlines()[-1])), flush=True)
        finally:
            if "his" in kinds and workdir is None:  # a kept county keeps its HIS databases too
                _drop_mariadb(config_path)


if __name__ == "__main__":
    main()
