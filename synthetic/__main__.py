"""`python -m synthetic`: generate the synthetic county (or its next day) without the platform CLI.

    python -m synthetic --size demo [--seed N] [--out DIR] [--his-url TEMPLATE] [--kinds his,lis]
    python -m synthetic --next-day [--out DIR]

`hutong synth` does the same through the platform's stages (and skips regenerating an unchanged county).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import synthetic
from hutong.config import SOURCE_KINDS, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="platform file (default: $HUTONG_CONFIG or config/county.yaml)")
    parser.add_argument("--size", help="tiny / demo / medium / county (default: the config's synthetic.size)")
    parser.add_argument("--seed", type=int, help="random seed (default: the config's synthetic.seed)")
    parser.add_argument("--out", type=Path, help="output folder (default: the config's data_dir)")
    parser.add_argument("--his-url", help='HIS database URL template, e.g. "mysql+pymysql://root@h:3306/his_{short}"')
    parser.add_argument("--kinds", help=f"comma-separated source kinds ({','.join(SOURCE_KINDS)}; default all)")
    parser.add_argument("--workers", type=int, help="processes generating institutions (default: automatic)")
    parser.add_argument("--next-day", action="store_true", help="append the day after the last generated day")
    args = parser.parse_args(argv)

    config = load_config(args.config)
    started = time.monotonic()
    if args.next_day:
        inc = synthetic.increment(config, out_dir=args.out, progress=print)
        new = sum(c.outpatient + c.inpatient for c in inc.his.values())
        print(f"increment {inc.day}: {new} new encounters, {sum(inc.updated.values())} rows changed")
        return 0
    settings = config.synthetic or {"size": "demo", "seed": 20261124}
    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip()) if args.kinds else None
    unknown = sorted(set(kinds or ()) - set(SOURCE_KINDS))
    if unknown:
        parser.error(f"unknown source kind(s) {', '.join(unknown)}; use {', '.join(SOURCE_KINDS)}")
    summary = synthetic.generate(
        config,
        size=args.size or settings["size"],
        out_dir=args.out,
        seed=args.seed if args.seed is not None else settings["seed"],
        his_url_template=args.his_url,
        kinds=kinds,
        progress=print,
        workers=args.workers,
    )
    print(
        f"synthetic county ({summary.size}, seed {summary.seed}, {summary.start}..{summary.end}): "
        f"{summary.persons} residents, {summary.records} records in {time.monotonic() - started:.1f}s "
        f"→ {summary.out_dir} (truth in {summary.truth_dir})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
