"""The benchmark harness still runs end to end: every contender measured, numbers written.

Runs `benchmarks/run.py --quick` for real (nginx, wrk, wakeproxy) and checks only that
it produced results, never how fast anything was: this machine is shared and noisy.
wakeproxy runs on the runtime-only venv the harness builds in the output dir (a `pip
install` of the runtime dependencies, a few seconds with a warm pip cache).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / "benchmarks" / "run.py"
# Caddy is a contender only where it is installed.
CONTENDERS = {"direct", "nginx-proxy", "floor", "wakeproxy"} | (
    {"caddy"} if shutil.which("caddy") else set())
MANY_APPS = "wakeproxy-10k-apps"  # measured in the 50-connection row only


def _run_quick(out: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(RUN), "--quick", "--duration", "1", "--out", str(out)],
        # Room for building the runtime venv from an empty pip cache (downloads).
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ),
    )
    assert proc.returncode == 0, f"run.py failed:\n{proc.stdout}\n{proc.stderr}"
    doc: dict[str, Any] = json.loads((out / "latest.json").read_text())
    return doc


@pytest.mark.slow
def test_quick_run_measures_every_contender(tmp_path: Path) -> None:
    doc = _run_quick(tmp_path)

    assert doc["rows"], "no load rows in the results"
    for row in doc["rows"]:
        expected = CONTENDERS | {MANY_APPS} if row["row"] == "c50" else CONTENDERS
        assert set(row["contenders"]) == expected, row["row"]
        for who, cell in row["contenders"].items():
            assert cell["rps"] > 0, f"{row['row']} {who}: no requests completed"
            assert cell["errors"] == 0, f"{row['row']} {who}: {cell['errors']} errors"
            assert cell["p99_ms"] >= cell["p50_ms"] > 0

    wake = doc["wake"]
    assert wake is not None and wake["samples"] > 0
    assert wake["startup_p50_ms"] > 0 and wake["ttfb_p50_ms"] > 0

    storm = doc["storm"]
    assert storm is not None and storm["requests"] > 0 and storm["held_seen"] > 0
    assert storm["ok"] + sum(storm["other"].values()) == storm["requests"]
    assert {c["awake"] for c in doc["sweeper"]["cases"]} >= {0, 100}
    assert doc["memory"]["idle_rss_kib_10_apps"] > 0
    assert doc["memory"]["idle_rss_kib_10000_apps"] > 0
    # The memory rows weigh what a user's install loads: no test or dev tool (structlog
    # would import `rich`), and the same interpreter for the import breakdown.
    runtime = doc["machine"]["wakeproxy_runtime"]
    assert runtime["kind"] == "runtime-only venv"
    assert runtime["dev_only_present"] == []
    assert all(runtime["packages"].values()), runtime["packages"]
    assert doc["imports"]["rich_installed"] is False
    assert doc["imports"]["total_mib"] > doc["imports"]["bare_mib"] > 0

    machine = doc["machine"]
    assert machine["nproc"] >= 1 and machine["nginx"] and machine["python"]
    judged = {t["target"] for t in doc["targets"]}
    assert {"wake overhead", "wake storm: app starts", "RSS at idle, 10 apps"} <= judged

    table = (tmp_path / "latest.md").read_text()
    assert "wakeproxy ran on: runtime-only venv" in table
    for who in CONTENDERS | {MANY_APPS}:
        assert f"| {who} |" in table


def test_the_hot_path_probe_drives_wakeproxy_and_the_floor() -> None:
    """`probes/hot_path.py` still reaches into the data plane as it is: both sides answer
    every request it feeds them (it exits non-zero when one does not) and it prints each
    side's time and their ratio."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probes" / "hot_path.py"),
         "--requests", "300", "--rounds", "1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["wakeproxy", "floor", "ratio"], proc.stdout
    assert float(lines[2].split()[1].rstrip("x")) > 0


def test_the_floor_plus_probe_adds_each_feature_and_still_answers() -> None:
    """`probes/floor_plus.py` builds the floor with wakeproxy's rules added step by step,
    calling wakeproxy's own functions: each step still answers every request it is fed
    (the probe exits non-zero otherwise) and is printed."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probes" / "floor_plus.py"),
         "--time", "--requests", "300"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = [line.split("  ")[0].strip() for line in proc.stdout.splitlines()]
    assert steps == ["floor", "+ request rules", "+ response rules", "+ routing and counting",
                     "+ access line"], proc.stdout  # fmt: skip
