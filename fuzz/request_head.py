"""Fuzz entry point for the request-head path: arbitrary client bytes through the real
ClientConnection (httptools parser, head checks, routing, holding, the upstream head and
the response relay), with in-memory transports instead of sockets.

`one_input(data)` feeds `data` to a fresh client connection (split into two reads at a
point the first byte picks), answers every request that reaches an upstream with a
canned response, then checks what a user or an app would notice:

- every upstream connection goes to a known app's endpoint (no open proxy);
- every head sent upstream is one valid HTTP/1.1 request head with exactly one Host
  that routes to that app, no hop-by-hop field, unambiguous framing, and forwarding
  headers that say what wakeproxy saw (the fuzzed client is never trusted);
- what the client receives is only HTTP/1.1 responses, never a traceback, and nothing
  went wrong inside (no error logged, no "internal proxy error").

A violated rule raises AssertionError (a crash for atheris). Used by fuzz_request_head.py
and by tests/hostile/test_fuzz_smoke.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Mapping, MutableMapping
from typing import Any

import httptools
import structlog

from wakeproxy.dataplane.activator import Activator
from wakeproxy.dataplane.client import ClientConnection
from wakeproxy.dataplane.context import Context
from wakeproxy.dataplane.headers import HOP_BY_HOP, RELAYED
from wakeproxy.dataplane.upstream import UpstreamConnection, UpstreamPool
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, RouteTable, normalize_host
from wakeproxy.model.stats import RequestStats

PEER = "10.9.8.7"
APPS = {
    "shop": (("shop.test", "*.shop.test"), Endpoint("10.0.0.1", 8080)),
    "idn": (("xn--bcher-kva.test",), Endpoint("10.0.0.2", 8080)),
    "sleepy": (("sleepy.test",), None),  # asleep: its requests are held
}
ENDPOINTS = {ep: app for app, (_, ep) in APPS.items() if ep is not None}
CANNED = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
# Statuses a client may see: the canned answer and those wakeproxy makes itself.
OUR_STATUSES = {b"200", b"400", b"404", b"405", b"408", b"414", b"431", b"503", b"504"}


class Wire(asyncio.Transport):
    """An in-memory transport: keeps what is written, remembers being closed."""

    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.out = bytearray()
        self.closed = False
        self.peer = peer

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.out += data

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.peer, "sockname": ("127.0.0.1", 1)}.get(name, default)


class WirePool(UpstreamPool):
    """The real pool's bookkeeping, with every new connection an in-memory one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop=loop, max_idle=4, idle_timeout=30.0, connect_timeout=5.0)
        self.opened: list[UpstreamConnection] = []

    def acquire(self, endpoint: Endpoint) -> UpstreamConnection | None:
        return None  # a new connection per request, so that every head gets checked

    def connect(self, endpoint: Endpoint, waiter: Any) -> None:
        assert endpoint in ENDPOINTS, f"connect to {endpoint}: not an app's endpoint"
        conn = UpstreamConnection(self, endpoint)
        conn.connection_made(Wire((endpoint.host, endpoint.port)))
        self.opened.append(conn)
        waiter.connected(conn)


class _Errors:
    """A structlog processor that keeps every error-level event."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def __call__(
        self, logger: Any, method: str, event: MutableMapping[str, Any]
    ) -> Mapping[str, Any]:
        if method in ("error", "exception", "critical"):
            exc = event.get("exc_info")
            if exc is True:
                exc = sys.exc_info()[1]
            detail = "".join(traceback.format_exception(exc)) if exc else ""
            self.events.append(f"{event.get('event')}\n{detail}")
        raise structlog.DropEvent


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.errors = _Errors()
        structlog.configure(processors=[self.errors], cache_logger_on_first_use=False)
        clock = SystemClock()
        self.board = ReadinessBoard(clock)
        routes = Routes(RouteTable.build((app, hosts) for app, (hosts, _) in APPS.items()))
        for app, (hosts, endpoint) in APPS.items():
            self.board.put(AppPolicy(name=app, hosts=hosts, wake_timeout=5.0))
            if endpoint is not None:
                self.board.mark_waking(app)
                self.board.mark_ready(app, (endpoint,))
        demand, request_stats = WakeDemand(), RequestStats()
        self.pool = WirePool(self.loop)
        self.ctx = Context(
            loop=self.loop, routes=routes, board=self.board, ledger=ActivityLedger(clock),
            demand=demand, stats=request_stats, access_log=lambda record: None,
            limits=Limits(max_head_bytes=4096, max_headers=30), trusted_proxies=(),
            clock=clock, pool=self.pool,
            activator=Activator(board=self.board, demand=demand, stats=request_stats,
                                clock=clock, retry_after=5),
        )

    def run(self, data: bytes) -> None:
        self.loop.run_until_complete(self._run(data))

    async def _run(self, data: bytes) -> None:
        self.pool.opened.clear()
        self.errors.events.clear()
        client = ClientConnection(self.ctx)
        wire = Wire((PEER, 40000))
        client.connection_made(wire)
        cut = 1 + data[0] % len(data) if data else 0
        checked = 0
        for part in (data[1:cut], data[cut:]) if data else ():
            if part and not wire.closed:
                client.data_received(part)
            checked = self._answer(checked)
        await asyncio.sleep(0)  # a hold's watcher task gets to run once
        self._answer(checked)
        # As a socket transport would, once each: the connection ends.
        client.connection_lost(None)
        for conn in self.pool.opened:
            conn.connection_lost(None)
        assert not self.errors.events, self.errors.events
        _check_client_output(bytes(wire.out))

    def _answer(self, checked: int) -> int:
        """Check each new upstream connection's head and answer it, in order."""
        while checked < len(self.pool.opened):
            conn = self.pool.opened[checked]
            checked += 1
            wire = conn.transport
            assert isinstance(wire, Wire)
            method = _check_upstream_head(bytes(wire.out), ENDPOINTS[conn.endpoint])
            if conn.exchange is not None:
                conn.data_received(CANNED if method == b"HEAD" else CANNED + b"ok")
        return checked


class _Head:
    def __init__(self) -> None:
        self.headers: list[tuple[bytes, bytes]] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.done = True


def _check_upstream_head(data: bytes, app: str) -> bytes:
    head, sep, _ = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head sent upstream: {data[:200]!r}"
    sink = _Head()
    parser = httptools.HttpRequestParser(sink)
    with contextlib.suppress(httptools.HttpParserUpgrade):
        parser.feed_data(head + sep)
    assert sink.done and parser.get_http_version() == "1.1", head[:200]
    names = [n for n, _ in sink.headers]
    fields = dict(sink.headers)
    assert names.count(b"host") == 1, head[:200]
    host = normalize_host(fields[b"host"].decode("latin-1"))
    hosts = APPS[app][0]
    assert host in hosts or any(h.startswith("*.") and host.endswith(h[1:]) for h in hosts), (
        f"a request for {host!r} went to {app!r}")
    upgrade = fields.get(b"connection") == b"upgrade"
    for name in names:
        if name in HOP_BY_HOP:
            assert name == b"transfer-encoding" or (upgrade and name in (b"connection",
                                                                        b"upgrade")), name
        assert name not in RELAYED, name
    assert names.count(b"content-length") <= 1
    assert not (b"content-length" in fields and b"transfer-encoding" in fields)
    if b"transfer-encoding" in fields:
        assert fields[b"transfer-encoding"].lower().endswith(b"chunked")
    assert fields[b"x-forwarded-for"] == PEER.encode()
    assert fields[b"x-forwarded-proto"] == b"http"
    return bytes(parser.get_method())


def _check_client_output(out: bytes) -> None:
    assert b"Traceback" not in out and b"internal proxy error" not in out, out[:300]
    if out:
        assert out.startswith(b"HTTP/1.1 "), out[:100]
    for line in out.split(b"\r\n"):
        if line.startswith(b"HTTP/1.1 ") and len(line) > 12 and line[12:13] == b" ":
            assert line[9:12] in OUR_STATUSES, line


_harness: Harness | None = None


def one_input(data: bytes) -> None:
    global _harness
    if _harness is None:
        _harness = Harness()
    _harness.run(data)
