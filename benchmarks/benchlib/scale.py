"""The scale rows that are not load: idle memory, the sweeper's tick, and import costs.

Owns running the in-process probes (`benchmarks/probes/*.py`, with the interpreter that
runs wakeproxy, so this harness itself never imports wakeproxy) and reading a settled
process's resident set. Never loads a process with requests.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchlib.procs import rss_kib

PROBES = Path(__file__).resolve().parent.parent / "probes"
SETTLE_SECONDS = 1.0


class ProbeFailed(Exception):
    """A probe exited badly or printed no JSON."""


def run_probe(
    python: str, name: str, *args: str, env: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> dict[str, Any]:
    """Run `probes/NAME.py ARGS` (`env` added to this process's) and return its last JSON."""
    argv = [python, str(PROBES / f"{name}.py"), *args]
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                             env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired as e:
        raise ProbeFailed(f"{name} did not finish within {timeout:.0f}s") from e
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        raise ProbeFailed(f"{name} exited with {out.returncode}: {out.stderr.strip()[-2000:]}")
    doc: dict[str, Any] = json.loads(lines[-1])
    return doc


def settled_rss_kib(pid: int, settle: float = SETTLE_SECONDS) -> int | None:
    """RSS once start-up work (config parse, first collections) is over."""
    time.sleep(settle)
    return rss_kib(pid)
