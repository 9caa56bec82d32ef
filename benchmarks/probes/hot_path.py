"""The data plane's own Python cost per request, with no sockets: wakeproxy against the floor.

    python benchmarks/probes/hot_path.py [--requests 20000] [--rounds 5] [--profile]
    python benchmarks/probes/hot_path.py --instructions   # needs valgrind

Drives the real protocol objects in one process: the client connection gets a keep-alive
GET as if read from a socket, the pooled upstream connection gets nginx's 100-byte answer,
and fake transports take what is written. Nothing else runs, so what is measured is the
Python each request costs, the part wakeproxy can change; the system calls (the same four
per request for both) are left out. The floor (`benchmarks/floor_proxy.py`, a flat ~150-line
proxy with no features) is driven the same way, alternating with wakeproxy, and the ratio
of the two is printed: on a shared machine the ratio moves much less than either time.
The access log is on, written to /dev/null, as `compare.py` runs wakeproxy.
`--profile` prints the Python calls one request makes (cProfile counts, not times).
`--featured` drives `benchmarks/featured_floor.py` as a third contender, the same way (the
floor plus wakeproxy's common-path work written flat; `--featured-off log,stats,rules,cut`
runs it without those features).
`--instructions` counts instead of timing: each side runs under callgrind twice, for 1,000
and for 3,000 requests, and the difference over 2,000 is its instructions per request,
start-up excluded. The counts repeat to a few hundred instructions on a loaded machine.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib.util
import io
import os
import pstats
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from wakeproxy.dataplane import DataPlane
from wakeproxy.dataplane.client import ClientConnection
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, RouteTable
from wakeproxy.model.stats import RequestStats
from wakeproxy.obs.lines import JsonLines

HERE = Path(__file__).resolve().parent
# What wrk sends in compare.py, and what its nginx upstream answers.
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"
BODY = b"x" * 99 + b"\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sun, 06 Dec 2026 06:00:00 GMT\r\n"
    b"Content-Type: text/plain\r\nContent-Length: 100\r\nConnection: keep-alive\r\n\r\n" + BODY
)


class FakeTransport(asyncio.Transport):
    """Takes writes and counts their bytes; a socket that is always ready."""

    def __init__(self, peer: tuple[str, int] | None = None) -> None:
        super().__init__()
        self.peer = peer
        self.written = 0
        self.closed = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.written += len(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self.peer
        return default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True


async def wakeproxy_pair(sink: JsonLines) -> tuple[Any, Any, FakeTransport]:
    clock = SystemClock()
    board = ReadinessBoard(clock)
    routes = Routes()
    endpoint = Endpoint("127.0.0.1", 9)
    board.put(AppPolicy(name="bench", hosts=("bench.test",)))
    board.mark_waking("bench")
    board.mark_ready("bench", (endpoint,))
    routes.table = RouteTable.build([("bench", ("bench.test",))])
    plane = DataPlane(
        routes=routes, board=board, ledger=ActivityLedger(clock), demand=WakeDemand(),
        stats=RequestStats(), access_log=sink.access if sink.enabled else None,
        limits=Limits(), clock=clock,
    )  # fmt: skip
    await plane.start("127.0.0.1", 0)
    plane.stop_accepting()
    ctx = plane._ctx  # a probe of the internals, on purpose
    assert ctx is not None
    client = ClientConnection(ctx)
    client_t = FakeTransport(("127.0.0.1", 40000))
    client.connection_made(client_t)
    up = ctx.pool.new_connection(endpoint)
    up.connection_made(FakeTransport())
    ctx.pool.release(up)
    return client, up, client_t


def devnull_sink(*, enabled: bool) -> JsonLines:
    """JSON access lines written to /dev/null: formatted and written, as in production."""
    # The stream lives as long as the probe.
    return JsonLines(open(os.devnull, "w"), enabled=enabled)


def load_floor(name: str = "floor_proxy") -> Any:
    """A fresh copy of `benchmarks/floor_proxy.py` (or another `<name>.py` there) as a
    module (its own idle pool)."""
    spec = importlib.util.spec_from_file_location(name, HERE.parent / f"{name}.py")
    assert spec is not None and spec.loader is not None
    argv, sys.argv = sys.argv, [f"{name}.py"]
    try:
        floor = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(floor)
    finally:
        sys.argv = argv
    return floor


def floor_pair(floor: Any = None) -> tuple[Any, Any, FakeTransport]:
    """A connected pair of the floor's classes (or of `floor`, a module shaped like it)."""
    floor = floor or load_floor()
    client = floor.Client()
    client_t = FakeTransport(("127.0.0.1", 40000))
    client.connection_made(client_t)
    up = floor.Upstream()
    up.connection_made(FakeTransport())
    floor.pool.append(up)
    return client, up, client_t


def load_featured(off: str = "") -> Any:
    """A fresh copy of `benchmarks/featured_floor.py` (the floor plus wakeproxy's common-path
    work, hand-written), its access lines to /dev/null, the features named in `off` (comma
    separated: log, stats, rules, cut, deadlines) turned off."""
    featured = load_floor("featured_floor")
    featured.log_out = io.FileIO(os.devnull, "w")  # lives as long as the probe
    for name in filter(None, off.split(",")):
        setattr(featured, name.upper(), False)
    return featured


def featured_pair(off: str = "") -> tuple[Any, Any, FakeTransport]:
    return floor_pair(load_featured(off))


def run(client: Any, up: Any, n: int) -> float:
    feed_client, feed_up = client.data_received, up.data_received
    start = time.perf_counter()
    for _ in range(n):
        feed_client(REQUEST)
        feed_up(RESPONSE)
    return (time.perf_counter() - start) / n * 1e6


def count_instructions(extra: list[str], sides: tuple[str, ...] = ("floor", "wakeproxy")) -> int:
    counts: dict[str, float] = {}
    for side in sides:
        totals = []
        for n in (1000, 3000):
            with tempfile.TemporaryDirectory() as wd:
                subprocess.run(
                    ["valgrind", "--tool=callgrind", f"--callgrind-out-file={wd}/cg.out",
                     sys.executable, __file__, "--only", side, "--requests", str(n), *extra],
                    check=True, capture_output=True,
                )  # fmt: skip
                text = Path(wd, "cg.out").read_text()
            totals.append(int(re.search(r"^(?:summary|totals): (\d+)", text, re.M)[1]))  # type: ignore[index]
        counts[side] = (totals[1] - totals[0]) / 2000
        print(f"{side:10} {counts[side]:9,.0f} instructions per request")
    print(f"ratio      {counts['wakeproxy'] / counts['floor']:9.2f}x the floor")
    if "featured" in counts:
        print(f"featured   {counts['featured'] / counts['floor']:9.2f}x the floor")
    return 0


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--instructions", action="store_true")
    ap.add_argument("--no-access-log", action="store_true")
    ap.add_argument("--featured", action="store_true",
                    help="also drive benchmarks/featured_floor.py, the floor plus wakeproxy's "
                    "common-path work written flat")  # fmt: skip
    ap.add_argument("--featured-off", default="", metavar="FEATURES",
                    help="with --featured: features to run without (log,stats,rules,cut)")
    ap.add_argument("--only", choices=("wakeproxy", "floor", "featured"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    off = ",".join(filter(None, [a.featured_off, "log" if a.no_access_log else ""]))
    if a.instructions:
        extra = (["--no-access-log"] if a.no_access_log else []) + ["--featured-off", off]
        sides = ("floor", "wakeproxy", "featured") if a.featured else ("floor", "wakeproxy")
        return count_instructions(extra, sides)
    sink = devnull_sink(enabled=not a.no_access_log)
    pairs = {"wakeproxy": await wakeproxy_pair(sink), "floor": floor_pair()}
    if a.featured or a.only == "featured":
        pairs["featured"] = featured_pair(off)
    if a.only:
        client, up, _ = pairs[a.only]
        run(client, up, 100)
        run(client, up, a.requests)
        return 0
    for name, (client, up, client_t) in pairs.items():
        run(client, up, 100)  # warm caches and the pool
        if client_t.written < 100 * (len(RESPONSE) - 30) or client_t.closed:
            sys.exit(f"{name} did not answer every request ({client_t.written} bytes written)")
    if a.profile:
        client, up, _ = pairs["wakeproxy"]
        prof = cProfile.Profile()
        prof.enable()
        run(client, up, 1000)
        prof.disable()
        out = io.StringIO()
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("ncalls").print_stats(40)
        print(out.getvalue())
        calls = sum(v[1] for v in stats.stats.values())  # type: ignore[attr-defined]
        print(f"{calls / 1000:.1f} calls per request (Python and C, as cProfile sees them)")
    best: dict[str, float] = {}
    for _ in range(a.rounds):
        for name, (client, up, _) in pairs.items():
            us = run(client, up, a.requests)
            best[name] = min(best.get(name, us), us)
    for name, us in best.items():
        print(f"{name:10} {us:6.2f} us per request (best of {a.rounds})")
    print(f"ratio      {best['wakeproxy'] / best['floor']:6.2f}x the floor")
    if "featured" in best:
        print(f"featured   {best['featured'] / best['floor']:6.2f}x the floor")
    return 0


if __name__ == "__main__":
    sys.exit(uvloop.run(main()))
