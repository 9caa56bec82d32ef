"""One wrk load run → exact numbers, read from wrk's own Lua `done` hook.

Owns the Lua reporter and the parsing of its line. Never reads wrk's human summary
(its units are rounded); never runs wrk against anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

_MARK = "WAKEPROXY-BENCH "

# wrk calls done() once, after every thread finished; latency percentiles are in µs.
REPORTER_LUA = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "%s{\\"requests\\":%d,\\"duration_us\\":%d,\\"bytes\\":%d,"
    .. "\\"p50_us\\":%d,\\"p99_us\\":%d,\\"mean_us\\":%.1f,\\"max_us\\":%d,"
    .. "\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d}\\n",
    "MARK", summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.mean, latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
""".replace("MARK", _MARK)


class WrkFailed(Exception):
    """wrk exited badly or printed no result line."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    bytes: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    socket_errors: int
    status_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / self.duration_s / 1e6 if self.duration_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["rps"] = round(self.rps, 1)
        out["mb_per_s"] = round(self.mb_per_s, 2)
        return out


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def write_reporter(directory: Path) -> Path:
    path = directory / "report.lua"
    path.write_text(REPORTER_LUA)
    return path


def parse_output(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(_MARK):
            raw = json.loads(line[len(_MARK):])
            return WrkResult(
                requests=int(raw["requests"]),
                duration_s=raw["duration_us"] / 1e6,
                bytes=int(raw["bytes"]),
                p50_ms=raw["p50_us"] / 1000,
                p99_ms=raw["p99_us"] / 1000,
                mean_ms=raw["mean_us"] / 1000,
                max_ms=raw["max_us"] / 1000,
                socket_errors=int(raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]),
                status_errors=int(raw["status"]),
            )
    raise WrkFailed("wrk printed no result line:\n" + stdout[-2000:])


def run_wrk(
    binary: str, url: str, *, host: str, connections: int, duration: float, reporter: Path,
    prefix: Sequence[str] = (),
) -> WrkResult:
    """One thread, `connections` keep-alive connections, GETs of `url` for `duration` seconds."""
    argv = [
        *prefix, binary, "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s",
        "--latency", "--timeout", "10s", "-H", f"Host: {host}", "-s", str(reporter), url,
    ]
    try:
        out = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration + 60, check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise WrkFailed(f"wrk did not finish: {' '.join(argv)}") from e
    if out.returncode != 0:
        raise WrkFailed(f"wrk exited with {out.returncode}: {out.stderr.strip() or out.stdout}")
    return parse_output(out.stdout)
