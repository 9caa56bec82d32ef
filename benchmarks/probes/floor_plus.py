"""What wakeproxy's features cost on the floor's structure: the floor, plus one at a time.

    python benchmarks/probes/floor_plus.py            # instructions per request (callgrind)
    python benchmarks/probes/floor_plus.py --time     # times instead (noisy)

The floor (`benchmarks/floor_proxy.py`) is driven in one process as `hot_path.py` drives
it, then again with wakeproxy's own per-request work added to its flat classes, cumulatively
and in the order below, each step calling the code wakeproxy runs (not a re-implementation):

- `+ request rules`: the request head read whole and checked as wakeproxy reads it
  (`raw_request_head` and a parser without callbacks) and rewritten by `upstream_head`
  (hop-by-hop fields, the forwarded headers, a request id) instead of the floor's own
  parser callbacks and filter;
- `+ response rules`: each field of the answer looked up by the plain path's own callback
  (`PlainConnection.on_header`: hop-by-hop fields, framing by Content-Length), the
  answer's end found from its length, the bytes relayed as they came but for the
  hop-by-hop lines cut out;
- `+ routing and counting`: the Host looked up in the route cache, the app's endpoint
  from the readiness board, the request counted in the activity ledger and the stats
  (`accounting.begin_counting` / `settle` with access lines off);
- `+ access line`: the access record and its JSON line (`settle` with the JSON lines
  output, to /dev/null).

The last row is the least any flat proxy doing all wakeproxy does on its common path can
cost on this stack; the distance from it to `hot_path.py`'s wakeproxy row is what the
structure (timeouts, pipelining, pause reasons, the hand-over to an exchange) costs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httptools
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hot_path as hp

from wakeproxy.dataplane.accounting import begin_counting, settle
from wakeproxy.dataplane.answers import cut_fields
from wakeproxy.dataplane.headers import NONE, raw_request_head, upstream_head
from wakeproxy.dataplane.plain import PlainConnection

STEPS = ("floor", "+ request rules", "+ response rules", "+ routing and counting",
         "+ access line")  # fmt: skip


def build(level: int, ctx: Any) -> tuple[Any, Any, hp.FakeTransport]:
    """The floor's two classes with the first `level` steps added; a connected pair."""
    floor = hp.load_floor()
    peer = b"127.0.0.1"

    class Upstream(floor.Upstream):  # type: ignore[name-defined,misc]
        status = 200

        def start(self, client: Any, data: bytes) -> None:
            if level < 2:
                super().start(client, data)  # the floor's own: a parser per answer
                return
            self.client = client
            client.up = self
            if getattr(self, "parser", None) is None:  # kept, as the plain path keeps it
                self.parser = httptools.HttpResponseParser(self)
            self.transport.write(data)

        def data_received(self, data: bytes) -> None:
            c = self.client
            if level < 2:
                c.transport.write(data)
                self.parser.feed_data(data)
                return
            # The plain path's rules for a whole answer in one read: each field looked up
            # as it is parsed (its own callback), the framing from Content-Length, the bytes
            # relayed as they came but for hop-by-hop lines cut out.
            end = data.find(b"\r\n\r\n")
            self._length = self._cut = None
            self._plain = True
            self.parser.feed_data(data)
            self.status = self.parser.get_status_code()
            assert self._plain and self._length is not None
            assert end + 4 + int(self._length) == len(data)
            if self._cut is not None:
                data = cut_fields(data, end, self._cut)
            c.transport.write(data)
            self.finish(c)

        if level >= 2:
            on_header = PlainConnection.on_header

        def on_message_complete(self) -> None:
            if level < 2:
                self.finish(self.client)

        def finish(self, c: Any) -> None:
            self.client = None
            c.up = None
            floor.pool.append(self)
            if level >= 3:
                h = c.head
                settle(ctx, c.route, c.counted, c.started, self.status, h.method, h.target,
                       None, c.rid, "127.0.0.1", "127.0.0.1:9", h.size, 200, None)
            c.done()


    class Client(floor.Client):  # type: ignore[name-defined,misc]
        lean = httptools.HttpRequestParser(object())  # no callbacks: it only checks

        def data_received(self, data: bytes) -> None:
            if level < 1:
                super().data_received(data)
                return
            # As wakeproxy reads a head that arrives whole: its request line and Host by
            # one regex, a search for any field a rule needs, the syntax checked by a
            # parser without callbacks; sent on as it came, plus the forwarded fields.
            h = raw_request_head(data, 65536, 100, False)
            assert h is not None and h.body == NONE
            self.lean.feed_data(data)
            self.head = h
            if level >= 3:
                route = ctx.route(h.host)
                state, activity = route[2], route[3]
                assert state is not None and activity is not None and state.endpoints
                self.route = route
                self.started = ctx.monotonic()
                self.counted = begin_counting(self.started, activity, state, h.target)
            rid = self.rid = ctx.ids.next()
            self.queue.append((upstream_head(h, peer, False, rid), True))
            self.pump()

    client = Client()
    client_t = hp.FakeTransport(("127.0.0.1", 40000))
    client.connection_made(client_t)
    up = Upstream()
    up.connection_made(hp.FakeTransport())
    floor.pool.append(up)
    return client, up, client_t


async def contexts() -> tuple[Any, Any]:
    """wakeproxy's shared per-plane state, with access lines off and on."""
    pairs = []
    for on in (False, True):
        client, _, _ = await hp.wakeproxy_pair(hp.devnull_sink(enabled=on))
        pairs.append(client.ctx)
    return pairs[0], pairs[1]


async def drive(level: int, n: int) -> float:
    quiet, logged = await contexts()
    client, up, client_t = build(level, logged if level >= 4 else quiet)
    hp.run(client, up, 100)
    us = hp.run(client, up, n)
    if client_t.written < (n + 100) * 200 or client_t.closed:
        sys.exit(f"level {level} did not answer every request")
    return us


def count(level: int) -> float:
    totals = []
    for n in (1000, 3000):
        with tempfile.TemporaryDirectory() as wd:
            subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={wd}/cg.out",
                 sys.executable, __file__, "--level", str(level), "--requests", str(n)],
                check=True, capture_output=True,
            )  # fmt: skip
            text = Path(wd, "cg.out").read_text()
        match = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
        assert match is not None
        totals.append(int(match[1]))
    return (totals[1] - totals[0]) / 2000


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--time", action="store_true")
    ap.add_argument("--level", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--requests", type=int, default=20000)
    a = ap.parse_args()
    if a.level is not None:
        uvloop.run(drive(a.level, a.requests))
        return 0
    for level, name in enumerate(STEPS):
        if a.time:
            us = min(uvloop.run(drive(level, a.requests)) for _ in range(3))
            print(f"{name:24} {us:6.2f} us per request", flush=True)
        else:
            print(f"{name:24} {count(level):9,.0f} instructions per request", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
