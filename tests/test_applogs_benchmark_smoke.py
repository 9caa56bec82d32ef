"""benchmarks/applogs.py still runs end to end and writes every number it promises.

Runs it with --quick for real (wakeproxy, nginx, wrk, the CLI following an app) and
checks what it wrote, never how fast anything was: this machine is shared and noisy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_writes_latency_throughput_cpu_and_dataplane(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "applogs.py"), "--quick", "--out",
         str(tmp_path)], capture_output=True, text=True, timeout=180, cwd=ROOT,
        env={**os.environ, "NO_PROXY": "127.0.0.1"})
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    doc = json.loads((tmp_path / "applogs.json").read_text())
    summary = doc["summary"]
    for key in ("latency_p50_ms_10k", "latency_p99_ms_10k", "follower_keeps_up_lines_per_s",
                "dataplane_rps_quiet", "dataplane_rps_streaming_10k",
                "wakeproxy_core_share_streaming_10k", "dataplane_per_core_quiet",
                "dataplane_per_core_streaming_10k"):
        assert summary[key] is not None, key
    assert summary["dataplane_rps_quiet"] > 0 and summary["dataplane_rps_streaming_10k"] > 0
    assert all(r["received"] > 0 for r in doc["latency"] + doc["throughput"])
    assert all(r["lines"] > 0 for r in doc["dataplane"])  # the stream ran during the load
