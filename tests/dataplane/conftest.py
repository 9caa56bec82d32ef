"""Fixtures for data-plane tests: a real DataPlane on a real socket, real upstreams, and a
tiny stand-in for the control plane that turns wake demand into readiness changes.

Everything listens on 127.0.0.1 port 0 and is closed when the test ends.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import pytest
import uvloop
from aiohttp import web
from multidict import CIMultiDict

from wakeproxy.dataplane import AccessRecord, DataPlane
from wakeproxy.dataplane.access import AccessRow
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, RouteTable
from wakeproxy.model.stats import RequestStats


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], Any]]:
    # The data plane runs on uvloop in production; test it there. WAKEPROXY_TEST_LOOP=asyncio
    # runs the same tests on the standard loop.
    if os.environ.get("WAKEPROXY_TEST_LOOP") == "asyncio":
        return {"asyncio": asyncio.new_event_loop}
    return {"uvloop": uvloop.new_event_loop}


# -- the control plane, played by the test ------------------------------------------


class ControlPlane:
    """Drains wake demand like the real waker: one wake per app at a time, then ready.

    `endpoints[app]` is where a woken app answers; `failures[app]` makes its wakes fail;
    `gates[app]` (an Event) holds its readiness until the test sets it.
    """

    def __init__(self, board: ReadinessBoard, demand: WakeDemand) -> None:
        self.board = board
        self.demand = demand
        self.endpoints: dict[str, Endpoint] = {}
        self.failures: dict[str, str] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.delay = 0.02
        self.wakes: collections.Counter[str] = collections.Counter()
        self.demanded: collections.Counter[str] = collections.Counter()
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        while True:
            for app in await self.demand.take():
                self.demanded[app] += 1
                state = self.board.get(app)
                if state is None or state.phase in (Phase.WAKING, Phase.AWAKE):
                    continue
                self.wakes[app] += 1
                self.board.mark_waking(app)
                task = asyncio.create_task(self._finish(app))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _finish(self, app: str) -> None:
        gate = self.gates.get(app)
        if gate is not None:
            await gate.wait()
        else:
            await asyncio.sleep(self.delay)
        if self.board.get(app) is None:
            return
        reason = self.failures.get(app)
        if reason is not None:
            self.board.mark_wake_failed(app, reason)
        else:
            self.board.mark_ready(app, (self.endpoints[app],))

    def stop(self) -> None:
        for t in list(self._tasks):
            t.cancel()


# -- the proxy under test ------------------------------------------------------------


@dataclass
class Proxy:
    dataplane: DataPlane
    host: str
    port: int
    board: ReadinessBoard
    routes: Routes
    ledger: ActivityLedger
    demand: WakeDemand
    stats: RequestStats
    control: ControlPlane
    records: list[AccessRecord] = field(default_factory=list)
    _apps: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def add_app(
        self, name: str, hosts: tuple[str, ...], endpoint: Endpoint | None = None, *,
        awake: bool = True, **policy: Any,
    ) -> None:  # fmt: skip
        """Route `hosts` to app `name`; awake at `endpoint` now, or asleep until demanded."""
        self.board.put(AppPolicy(name=name, hosts=hosts, **policy))
        self._apps[name] = hosts
        self.routes.table = RouteTable.build(self._apps.items())
        if endpoint is not None:
            self.control.endpoints[name] = endpoint
            if awake:
                self.board.mark_waking(name)
                self.board.mark_ready(name, (endpoint,))

    def remove_app(self, name: str) -> None:
        self._apps.pop(name, None)
        self.routes.table = RouteTable.build(self._apps.items())
        self.board.remove(name)

    async def wait_records(self, n: int) -> list[AccessRecord]:
        await until(lambda: len(self.records) >= n)
        return self.records


async def until(predicate: Callable[[], object], limit: float = 5.0) -> None:
    """Wait until `predicate()` is true; the proxy's counters have no events to wait on."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polling state that has no event
            await asyncio.sleep(0.005)


ProxyFactory = Callable[..., Awaitable[Proxy]]


@pytest.fixture
async def make_proxy() -> AsyncIterator[ProxyFactory]:
    made: list[tuple[Proxy, asyncio.Task[None]]] = []

    async def make(
        limits: Limits | None = None,
        access_log: Callable[[AccessRow], None] | None = None,
        **kwargs: Any,
    ) -> Proxy:
        clock = SystemClock()
        board = ReadinessBoard(clock)
        demand = WakeDemand()
        routes = Routes()
        ledger = ActivityLedger(clock)
        stats = RequestStats()
        records: list[AccessRecord] = []
        dp = DataPlane(
            routes=routes, board=board, ledger=ledger, demand=demand, stats=stats,
            access_log=access_log or (lambda row: records.append(AccessRecord.of(row))),
            limits=limits or Limits(), clock=clock,
            **kwargs,
        )  # fmt: skip
        host, port = await dp.start("127.0.0.1", 0)
        control = ControlPlane(board, demand)
        task = asyncio.create_task(control.run())
        p = Proxy(dp, host, port, board, routes, ledger, demand, stats, control, records)
        made.append((p, task))
        return p

    yield make
    for p, task in made:
        p.control.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await p.dataplane.drain(0.5)


@pytest.fixture
async def proxy(make_proxy: ProxyFactory) -> Proxy:
    return await make_proxy()


# -- upstreams ------------------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    headers: CIMultiDict[str]
    raw_headers: list[tuple[str, str]]
    body: bytes
    peer_port: int


class Upstream:
    """A small aiohttp app that records every request it gets and answers by path."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.endpoint = Endpoint("127.0.0.1", 0)
        self.in_flight = 0
        self.max_in_flight = 0
        self.gate: asyncio.Event | None = None  # /gated waits for it
        self.runner: web.AppRunner | None = None

    @property
    def connections(self) -> set[int]:
        return {s.peer_port for s in self.seen}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.path != "/upload" else b""
        peer = request.transport.get_extra_info("peername") if request.transport else None
        headers = CIMultiDict(request.headers)
        seen = Seen(request.method, request.path_qs, headers, list(headers.items()), body,
                    peer[1] if peer else 0)  # fmt: skip
        self.seen.append(seen)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request, body)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request, body: bytes) -> web.StreamResponse:
        path = request.path
        if path.startswith("/status/"):
            return web.Response(status=int(path.rsplit("/", 1)[1]), text="x" * 5)
        if path == "/slow":
            await asyncio.sleep(float(request.query.get("delay", "0.3")))
            return web.Response(text="slow done")
        if path == "/gated":
            assert self.gate is not None
            await self.gate.wait()
            return web.Response(text="gated done")
        if path == "/chunked":
            resp = web.StreamResponse()
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            for i in range(3):
                await resp.write(f"part{i};".encode())
            await resp.write_eof()
            return resp
        if path == "/download":
            size = int(request.query["size"])
            resp = web.StreamResponse()
            resp.content_length = size
            await resp.prepare(request)
            chunk = b"d" * 65536
            sent = 0
            while sent < size:
                part = chunk[: min(65536, size - sent)]
                await resp.write(part)
                sent += len(part)
            return resp
        if path == "/upload":
            await asyncio.sleep(float(request.query.get("delay", "0")))
            total = 0
            async for part in request.content.iter_any():
                total += len(part)
            return web.Response(text=str(total))
        if path == "/ws":
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            async for msg in ws:
                await ws.send_str("echo:" + msg.data)
            return ws
        return web.json_response(
            {
                "method": request.method,
                "path": request.path_qs,
                "body": body.decode("latin-1"),
                "headers": dict(request.headers),
            }
        )


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", up.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    up.endpoint = Endpoint("127.0.0.1", port)
    up.runner = runner
    yield up
    await runner.cleanup()


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def raw_upstream() -> AsyncIterator[Callable[[RawHandler], Awaitable[Endpoint]]]:
    """Start a raw TCP server whose connections `handler(reader, writer)` serves."""
    servers: list[asyncio.Server] = []
    handlers: set[asyncio.Task[Any]] = set()

    async def start(handler: RawHandler) -> Endpoint:
        async def wrapped(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await handler(r, w)
            except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
                pass
            finally:
                w.close()
                handlers.discard(task)

        server = await asyncio.start_server(wrapped, "127.0.0.1", 0)
        servers.append(server)
        return Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()
    for t in list(handlers):
        t.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


# -- raw clients ----------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class _Collector:
    def __init__(self, parser_holder: list[Any]) -> None:
        self.responses: list[Response] = []
        self._holder = parser_holder
        self._headers: list[tuple[str, str]] = []
        self._body = bytearray()

    def on_message_begin(self) -> None:
        self._headers = []
        self._body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        status = self._holder[0].get_status_code()
        self.responses.append(Response(status, self._headers, bytes(self._body)))


def parse_responses(data: bytes) -> list[Response]:
    """Split raw bytes into complete responses (length-delimited; not for HEAD)."""
    holder: list[Any] = []
    collector = _Collector(holder)
    parser = httptools.HttpResponseParser(collector)
    holder.append(parser)
    with contextlib.suppress(httptools.HttpParserUpgrade):
        parser.feed_data(data)
    return collector.responses


async def exchange_raw(
    proxy: Proxy, data: bytes, *, limit: float = 3.0, half_close: bool = False
) -> bytes:
    """Send `data` (then shut the sending side, with `half_close`), read until the proxy
    closes the connection (or `limit` seconds pass)."""
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        out = bytearray()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        break
                    out += chunk
        return bytes(out)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader, *, head_only: bool = False) -> Response:
    """Read exactly one response (Content-Length or chunked) from a keep-alive connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = [(k, v.strip()) for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    resp = Response(status, headers, b"")
    if head_only or status in (204, 304) or 100 <= status < 200:
        return resp
    te = resp.header("transfer-encoding")
    if te and "chunked" in te.lower():
        body = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        resp.body = bytes(body)
    elif resp.header("content-length") is not None:
        resp.body = await reader.readexactly(int(resp.header("content-length") or 0))
    else:
        resp.body = await reader.read()
    return resp


def abort(writer: asyncio.StreamWriter) -> None:
    """Leave with a reset, as a client that is gone for good (not a half-close)."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
