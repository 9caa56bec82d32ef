"""The machine a run happened on: CPU, kernel, tool versions, load average.

Owns only `--version`-style queries of the tools it describes and reads of /proc.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
from typing import Any


def machine_info(nginx_version: str, wrk_binary: str, pinned: bool) -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    wrk = subprocess.run([wrk_binary, "-v"], capture_output=True, text=True, check=False)
    wrk_version = (wrk.stdout or wrk.stderr).split("[", 1)[0].strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "nginx": nginx_version,
        "wrk": wrk_version,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "pinning": "wrk + upstream on core 0, proxy on core 1" if pinned else "none",
    }
