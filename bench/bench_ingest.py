"""Benchmark: connector throughput on a synthetic county, each measurement in its own process (own peak RSS).

    .venv/bin/python bench/bench_ingest.py [size] [part ...] [--workdir DIR [--reuse]] [--orgs SHORT,...]
                                                                  (default: medium, every part, a temp dir)

`--workdir DIR` keeps the generated county (and its MariaDB databases) in DIR instead of a temporary folder; with
`--reuse` a county generated there before (same size, covering the parts' kinds) is used again instead of being
regenerated (the MLLP part spools into its own folder and leaves the LIS drop files alone). `--orgs` measures a
subset of the institutions.

Parts: `lis` (HL7 files → raw, with the hl7apy per-message baseline measured on a sample in the same run),
`mllp` (one MLLP connection, AA only after fdatasync, then the spool landed in raw), `his` (MariaDB → raw),
`emr` (CDA/FHIR documents), `pacs` (DICOM headers + reports), `public_health` (CSV/Excel rows).
The county is generated once (HIS into MariaDB databases `hutong_bench_<org_code>`, dropped at the end). With
`--workdir DIR` the county and its MariaDB databases (`hutong_bench_<dir name>_<org_code>`) are kept there;
`--reuse` then skips the generation when DIR holds a county of that size with the kinds asked for. `--orgs`
measures a subset of institutions (by short name) for fast iteration; report figures on the whole county.
Targets (issue 4, 2 cores): HL7 ≥ 20,000 messages/s from files, ≥ 2,000/s over MLLP with durable ACK, HIS ≥ 50,000
rows/s, peak RSS < 2 GB whatever the input size.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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


def _his_template(prefix: str) -> str:
    return f"{MARIADB}/{prefix}{{org_code}}?charset=utf8mb4"


def _config(workdir: Path, prefix: str, orgs: tuple[str, ...] = (), name: str = "county.yaml") -> Path:
    """The shipped county (or the institutions `orgs` of it) with a private data dir and warehouse; HIS in MariaDB."""
    raw = yaml.safe_load((ROOT / "config" / "county.yaml").read_text(encoding="utf-8"))
    raw["platform"]["data_dir"] = str(workdir / "data")
    raw["warehouse"]["url"] = f"duckdb:///{workdir}/warehouse.duckdb"
    raw["source_defaults"]["his"]["url"] = _his_template(prefix)
    if orgs:
        unknown = set(orgs) - {i["short"] for i in raw["institutions"]}
        if unknown:
            sys.exit(f"--orgs: unknown institutions {sorted(unknown)}")
        raw["institutions"] = [i for i in raw["institutions"] if i["short"] in orgs]
    path = workdir / name
    path.write_text(yaml.safe_dump(raw, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_seconds() -> float:
    """CPU time of this process (every thread) so far: comparable on a loaded machine, unlike wall time."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _mariadb_cpu_seconds() -> float:
    """CPU time of the local MariaDB server so far (the HIS part's source side); 0 when it is not found."""
    import psutil

    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] in ("mariadbd", "mysqld"):
            times = proc.cpu_times()
            return times.user + times.system
    return 0.0


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
        started, cpu, server = time.perf_counter(), _cpu_seconds(), _mariadb_cpu_seconds()
        runs = ingest(wh, config, kinds=[part])
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
        if part == "his":
            out["source_cpu_seconds"] = _mariadb_cpu_seconds() - server
        errors = [r.error for r in runs if r.error]
        out |= {"records": sum(r.rows_in for r in runs), "new": sum(r.rows_loaded for r in runs),
                "quarantined": sum(r.rows_quarantined for r in runs), "seconds": seconds, "cpu_seconds": cpu,
                "errors": errors}  # fmt: skip
        if part == "lis":
            out["results"] = wh.count("raw.lis_result")
            out["append_seconds"] = landing[0] if landing else 0.0
        closing = time.perf_counter()
    out["close_seconds"] = time.perf_counter() - closing  # DuckDB checkpoints what the WAL still holds on close
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
        started, cpu = time.perf_counter(), _cpu_seconds()
        codes = send("127.0.0.1", running.port, messages)
        seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu
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


def _generate(config_path: Path, size: str, kinds: tuple[str, ...], prefix: str) -> dict[str, object]:
    import synthetic
    from hutong.config import load_config

    config = load_config(config_path)
    template = _his_template(prefix) if "his" in kinds else None
    started = time.perf_counter()
    summary = synthetic.generate(config, size=size, out_dir=config.data_dir, seed=20261124,
                                 his_url_template=template, kinds=kinds)  # fmt: skip
    return {"records": summary.records, "seconds": time.perf_counter() - started}


def _drop_mariadb(config_path: Path, prefix: str) -> None:
    from sqlalchemy import create_engine, text

    from hutong.config import load_config

    engine = create_engine(MARIADB)
    with engine.begin() as conn:
        for inst in load_config(config_path).institutions:
            conn.execute(text(f"DROP DATABASE IF EXISTS {prefix}{inst.org_code}"))
    engine.dispose()


def _generated(workdir: Path, size: str, kinds: tuple[str, ...], reuse: bool, prefix: str) -> dict[str, object] | None:
    """The marker of a county already generated in `workdir` with this size and these kinds (None: generate)."""
    marker = workdir / "generated.json"
    if not (reuse and marker.is_file()):
        marker.unlink(missing_ok=True)
        return None
    done = json.loads(marker.read_text(encoding="utf-8"))
    if done["size"] != size or done["prefix"] != prefix or not set(kinds) <= set(done["kinds"]) or (
            "his" in kinds and not _mariadb_has(prefix)):  # fmt: skip
        marker.unlink()
        return None
    return done


def _mariadb_has(prefix: str) -> bool:
    """Whether MariaDB still holds databases generated with this prefix."""
    from sqlalchemy import create_engine, text

    engine = create_engine(MARIADB)
    with engine.connect() as conn:
        found = conn.execute(text("SHOW DATABASES LIKE :p"), {"p": prefix.replace("_", "\\_") + "%"}).fetchall()
    engine.dispose()
    return bool(found)


def _run_parts(parts: tuple[str, ...], config_path: Path) -> None:
    print(f"{'part':14s} {'records':>11s} {'wall':>9s} {'throughput':>13s} {'peak RSS':>12s}")
    for part in [p for p in PARTS if p in parts and p != "mllp"] + (["mllp"] if "mllp" in parts else []):
        done = subprocess.run([sys.executable, __file__, "--part", part, str(config_path)], capture_output=True,
                              text=True, cwd=ROOT)  # fmt: skip
        if done.returncode != 0:
            print(f"{part:14s} FAILED: {done.stderr.strip().splitlines()[-1] if done.stderr else '?'}")
            continue
        print(_row(json.loads(done.stdout.strip().splitlines()[-1])), f"  (load average {_load()})", flush=True)


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _row(r: dict[str, object]) -> str:
    part, seconds, records = str(r["part"]), float(r["seconds"]), int(r["records"])  # type: ignore[arg-type]
    line = f"{part:14s} {records:>11,} {seconds:>8.1f}s {records / seconds:>11,.0f}/s {r['peak_rss_mib']:>8,.0f} MiB"
    if "cpu_seconds" in r:
        line += f"   CPU {float(r['cpu_seconds']):,.1f} s ({records / max(float(r['cpu_seconds']), 1e-9):,.0f}/CPU-s)"  # type: ignore[arg-type]
    if "close_seconds" in r:
        line += f"   close {float(r['close_seconds']):.1f}s"  # type: ignore[arg-type]
    if "source_cpu_seconds" in r:
        line += f" + MariaDB server {float(r['source_cpu_seconds']):,.1f} CPU-s"  # type: ignore[arg-type]
    if part == "lis":
        fast = records / seconds
        line += (f"   in append_raw {float(r['append_seconds']):.1f}s wall; "
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("size", nargs="?", default="medium")
    parser.add_argument("parts", nargs="*", help=f"any of {', '.join(PARTS)} (default: every part)")
    parser.add_argument("--workdir", type=Path, help="keep the county and its MariaDB databases here")
    parser.add_argument("--reuse", action="store_true", help="with --workdir: reuse the county generated there")
    parser.add_argument("--orgs", default="", help="measure only these institutions (short names, comma-separated)")
    args = parser.parse_args()
    if args.reuse and not args.workdir:
        parser.error("--reuse needs --workdir")
    parts = tuple(args.parts) or PARTS
    if set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(set(parts) - set(PARTS))}; choose from {', '.join(PARTS)}")
    kinds = tuple(sorted({"lis" if p == "mllp" else p for p in parts}))
    orgs = tuple(o.strip() for o in args.orgs.split(",") if o.strip())
    with tempfile.TemporaryDirectory(prefix="hutong_bench_ingest_") as tmp:
        workdir = (args.workdir or Path(tmp)).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        prefix = f"hutong_bench_{re.sub(r'[^a-z0-9]', '_', workdir.name.lower())}_" if args.workdir else "hutong_bench_"
        config_path = _config(workdir, prefix)
        try:
            gen = _generated(workdir, args.size, kinds, args.reuse, prefix)
            if gen is None:
                gen = _generate(config_path, args.size, kinds, prefix)
                gen |= {"size": args.size, "kinds": list(kinds), "prefix": prefix}
                print(f"synthetic {args.size} county ({', '.join(kinds)}): {gen['records']:,} records in "
                      f"{gen['seconds']:.0f}s")  # fmt: skip
            else:
                print(f"synthetic {args.size} county ({', '.join(kinds)}) reused from {workdir}")
            (workdir / "generated.json").write_text(json.dumps(gen), encoding="utf-8")
            _run_parts(parts, _config(workdir, prefix, orgs, "county-run.yaml") if orgs else config_path)
        finally:
            if "his" in kinds and not args.workdir:
                _drop_mariadb(config_path, prefix)


if __name__ == "__main__":
    main()
