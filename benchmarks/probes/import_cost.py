"""What each import of `wakeproxy serve` adds to the resident set, in the daemon's order.

    python benchmarks/probes/import_cost.py

Imports the libraries the daemon loads one after another in a fresh interpreter and
reads VmRSS after each. Prints one JSON object: the RSS of the bare interpreter, then
per step the module and the MiB it added (shared libraries it maps count too, as they do
in the daemon's RSS). Explains the floor under the idle-memory target; changes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys

STEPS = (
    ("asyncio", "the event loop (and ssl, which asyncio loads)"),
    ("uvloop", "libuv event loop"),
    ("httptools", "llhttp parser"),
    ("yaml", "config parser"),
    ("structlog", "structured logging"),
    ("aiohttp.web", "admin API server"),
    ("prometheus_client", "metrics exposition"),
    ("wakeproxy.app", "wakeproxy itself (data plane, control plane, obs, settings)"),
    ("wakeproxy.platforms.local.platform", "the local platform"),
    ("wakeproxy.cli", "the command line (`serve` is started through it)"),
)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    base = prev = rss_mib()
    steps = []
    for module, what in STEPS:
        importlib.import_module(module)
        now = rss_mib()
        steps.append({"module": module, "what": what, "added_mib": round(now - prev, 1)})
        prev = now
    # structlog pulls in `rich` (and pygments) when it is installed, for pretty tracebacks;
    # a production image without dev tools does not have it.
    rich = "rich" in sys.modules or importlib.util.find_spec("rich") is not None
    print(json.dumps({"bare_mib": round(base, 1), "total_mib": round(prev, 1),
                      "steps": steps, "rich_installed": rich}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
