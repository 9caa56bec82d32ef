"""The command line of `benchmarks/run.py`: its options and the tools it needs.

Owns argument parsing with the quick/full defaults, and the preflight that finds nginx
and wrk or says exactly how to get them. Never starts anything it measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from benchlib import nginx, report, wrk


def parse_args(argv: list[str], *, description: str, results: Path) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="one round, 2 s each, fewer rows and wake samples (CI smoke)")
    p.add_argument("--duration", type=float, help="seconds per wrk run (default 10, quick 2)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    p.add_argument("--wake-samples", type=int, help="cold wakes to time (default 10, quick 3)")
    p.add_argument("--storm", type=int, default=1000,
                   help="concurrent requests in the wake storm (default 1000)")
    p.add_argument("--storm-delay", type=float,
                   help="seconds the storm's app takes to start (default 3, quick 1.5)")
    p.add_argument("--out", type=Path, default=results, help="where latest.* go")
    p.add_argument("--contenders", default=",".join(report.MAIN),
                   help="comma-separated subset of: " + ", ".join(report.MAIN))
    p.add_argument("--python", default=None,
                   help="interpreter that runs wakeproxy and the probes, used as is (default: a "
                        "venv with only wakeproxy's runtime dependencies, built in "
                        "OUT/runtime-venv on first use and reused)")
    p.add_argument("--install", action="store_true",
                   help="apt-get install nginx-light wrk when missing (root only)")
    args = p.parse_args(argv)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.wake_samples = args.wake_samples or (3 if args.quick else 10)
    args.storm_delay = args.storm_delay or (1.5 if args.quick else 3.0)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = set(args.contenders) - set(report.MAIN)
    if unknown or not args.contenders:
        p.error(f"--contenders: unknown {sorted(unknown)}; choose from {report.MAIN}")
    return args


def preflight(install: bool) -> tuple[str, str]:
    """(nginx, wrk) paths, or exit saying exactly how to get them."""
    ng, wr = nginx.nginx_binary(), wrk.wrk_binary()
    if (ng is None or wr is None) and install:
        if os.geteuid() != 0:
            sys.exit("--install needs root: run `sudo apt-get install -y nginx-light wrk` instead")
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(["apt-get", "install", "-y", "nginx-light", "wrk"], check=True)
        ng, wr = nginx.nginx_binary(), wrk.wrk_binary()
    missing = [name for name, path in (("nginx", ng), ("wrk", wr)) if path is None]
    if missing or ng is None or wr is None:
        sys.exit(
            f"missing: {', '.join(missing)}. Install with `sudo apt-get install -y nginx-light wrk`"
            " (or rerun this script as root with --install)."
        )
    return ng, wr
