"""Upstream trouble: dead pooled connections, refusals, silence, garbage, early closes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time

import aiohttp
import pytest

from tests.dataplane.conftest import (
    Proxy,
    ProxyFactory,
    Upstream,
    abort,
    exchange_raw,
    parse_responses,
    read_head,
    read_response,
)
from tests.dataplane.realapps import KEEP_ALIVE, real_app
from wakeproxy.dataplane.upstream import UpstreamConnection, UpstreamPool
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.limits import Limits

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_pooled_connection_closed_by_the_app_is_retried_once(proxy: Proxy, raw_upstream):
    connections = 0

    async def app(reader, writer):
        # Each connection answers one request, then silently drops the next one: the
        # race of an app closing an idle keep-alive connection as the proxy reuses it.
        nonlocal connections
        connections += 1
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_head(reader)
        writer.transport.abort()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for _ in range(3):
        writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        resp = await asyncio.wait_for(read_response(reader), 2)
        assert (resp.status, resp.body) == (200, b"ok")
    writer.close()
    assert connections == 3


async def test_a_non_idempotent_request_is_not_retried(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_head(reader)
        writer.transport.abort()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await read_response(reader)).status == 200
    writer.write(b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 1\r\n\r\nx")
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert resp.status == 502 and b"shop" in resp.body
    writer.close()


async def test_idle_pooled_connections_closed_by_the_app_are_dropped(
    proxy: Proxy, raw_upstream
):
    async def app(reader, writer):
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        writer.close()  # closes right after answering, while idle in the pool

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(3):
            async with s.post(proxy.url("/"), data=b"not idempotent") as r:
                assert r.status == 200
            await asyncio.sleep(0.05)


async def test_refused_connection_is_502_naming_the_app(make_proxy: ProxyFactory):
    # A refusal is retried until connect_timeout (the app may be between processes).
    proxy = await make_proxy(Limits(connect_timeout=0.3))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    proxy.add_app("shop", ("shop.test",), Endpoint("127.0.0.1", port))
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/")) as r,
    ):
        assert r.status == 502
        text = await r.text()
        assert "shop" in text and "refused" in text
    assert proxy.records[0].status == 502


async def test_response_head_timeout_is_504(make_proxy: ProxyFactory, upstream: Upstream):
    proxy = await make_proxy(Limits(response_header_timeout=0.2))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        async with s.get(proxy.url("/slow?delay=1")) as r:
            assert r.status == 504
            assert r.headers["Retry-After"] == "5"  # as README's status table says
            assert "shop" in await r.text()
        async with s.get(proxy.url("/")) as r:  # the connection is still fine
            assert r.status == 200


async def test_app_dying_mid_response_closes_the_client_connection(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    data = await exchange_raw(proxy, b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"only part")
    rec = (await proxy.wait_records(1))[0]
    assert rec.status == 200 and "mid-response" in (rec.reason or "")


async def test_garbage_from_the_app_is_502(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await read_head(reader)
        writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    data = await exchange_raw(
        proxy, b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    )
    [resp] = parse_responses(data)
    assert resp.status == 502 and b"invalid response" in resp.body


async def test_app_closing_before_answering_is_502(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await read_head(reader)
        writer.close()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/")) as r,
    ):
        assert r.status == 502
        assert "closed the connection" in await r.text()


async def test_early_answer_to_an_upload_closes_cleanly(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await read_head(reader)
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n\r\nbig")
        await writer.drain()
        await asyncio.sleep(0.5)

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 1000000\r\n\r\nabc")
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert resp.status == 413 and resp.header("connection") == "close"
    writer.close()


async def test_upstream_connection_is_closed_when_the_client_leaves(proxy: Proxy, raw_upstream):
    closed = asyncio.Event()

    async def app(reader, writer):
        await read_head(reader)
        await reader.read()  # returns when the proxy closes its side
        closed.set()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    _reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.05)
    abort(writer)  # a client that only half-closes is still answered
    await asyncio.wait_for(closed.wait(), 2)
    assert (await proxy.wait_records(1))[0].status == 499


async def test_connect_timeout_is_502(make_proxy: ProxyFactory):
    # A listener that never accepts, with its backlog full: further SYNs go unanswered.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            s = socket.socket()
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
            fillers.append(s)
        await asyncio.sleep(0.05)
        proxy = await make_proxy(Limits(connect_timeout=0.2))
        proxy.add_app("shop", ("shop.test",), Endpoint("127.0.0.1", port))
        async with (
            aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
            s.get(proxy.url("/")) as r,
        ):
            assert r.status == 502
            text = await r.text()
            assert "shop" in text and "within 0.2s" in text
    finally:
        for s in fillers:
            s.close()
        listener.close()


def test_the_pool_lets_go_before_common_app_servers_close_idle_connections() -> None:
    assert Limits().upstream_idle_timeout < min(KEEP_ALIVE.values())


@pytest.mark.parametrize(
    ("server", "args", "keep_alive", "limits"),
    [
        pytest.param("gunicorn", (), KEEP_ALIVE["gunicorn"], Limits(), id="gunicorn-defaults"),
        pytest.param("gunicorn", (), KEEP_ALIVE["gunicorn"],
                     Limits(upstream_idle_timeout=30), id="gunicorn-long-pool-timeout"),
        pytest.param("uvicorn", ("--timeout-keep-alive", "1"), 1.0,
                     Limits(upstream_idle_timeout=30), id="uvicorn-long-pool-timeout"),
    ],
)  # fmt: skip
async def test_a_post_sent_as_the_app_closes_its_idle_connection_goes_through(
    make_proxy: ProxyFactory, server: str, args: tuple[str, ...], keep_alive: float,
    limits: Limits,
) -> None:
    # The app closes a pooled connection after its keep-alive. A POST (not retried: it is
    # not idempotent) that arrives just before the close, while the proxy is busy, is
    # handled only after the close: it must not be written to that dead connection.
    proxy = await make_proxy(limits)
    async with real_app(server, *args) as endpoint:
        proxy.add_app("shop", ("shop.test",), endpoint)
        client = socket.create_connection((proxy.host, proxy.port))
        with client:
            client.settimeout(5)
            client.sendall(b"GET /first HTTP/1.1\r\nHost: shop.test\r\n\r\n")
            assert (await recv_response(client)).startswith(b"HTTP/1.1 200")
            await asyncio.sleep(keep_alive - 0.3)
            client.sendall(b"POST /order HTTP/1.1\r\nHost: shop.test\r\n"
                           b"Content-Length: 7\r\n\r\npayload")
            # Busy past the app's close (gunicorn's threads check every second).
            time.sleep(1.3 if server == "gunicorn" else 0.6)  # noqa: ASYNC251 - on purpose
            got = await recv_response(client)
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(b"POST /order payload"), got


async def recv_response(sock: socket.socket) -> bytes:
    """One whole response from a blocking socket, read without blocking the loop."""
    loop = asyncio.get_running_loop()
    got = b""
    while not parse_responses(got):
        ready: asyncio.Future[None] = loop.create_future()
        loop.add_reader(sock.fileno(), _set_once, ready)
        try:
            await asyncio.wait_for(ready, 5)
        finally:
            loop.remove_reader(sock.fileno())
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _set_once(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


async def test_the_pool_forgets_endpoints_whose_connections_it_closed() -> None:
    """Every wake may bring the app new addresses (new pods, or new ports locally): once
    their idle connections are swept, the old endpoints leave the pool, which would
    otherwise keep (and sweep on every tick) an entry for each address it ever used."""
    loop = asyncio.get_running_loop()
    pool = UpstreamPool(loop=loop, max_idle=4, idle_timeout=30, connect_timeout=2)

    class Waiter:
        def __init__(self) -> None:
            self.done: asyncio.Future[UpstreamConnection] = loop.create_future()

        def connected(self, conn: UpstreamConnection) -> None:
            self.done.set_result(conn)

        def connect_failed(self, reason: str, *, nobody_there: bool = False) -> None:
            self.done.set_exception(OSError(reason))

    async def quiet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    servers = [await asyncio.start_server(quiet, "127.0.0.1", 0) for _ in range(20)]
    try:
        endpoints = [Endpoint("127.0.0.1", s.sockets[0].getsockname()[1]) for s in servers]
        for endpoint in endpoints:
            waiter = Waiter()
            pool.connect(endpoint, waiter)
            pool.release(await asyncio.wait_for(waiter.done, 2))
        assert pool.endpoints == 20 and pool.idle_connections == 20
        pool.sweep(loop.time() + 31)  # the idle timeout has passed for all of them
        assert (pool.endpoints, pool.idle_connections) == (0, 0)
        # An endpoint seen again is pooled as before.
        waiter = Waiter()
        pool.connect(endpoints[0], waiter)
        conn = await asyncio.wait_for(waiter.done, 2)
        pool.release(conn)
        assert pool.acquire(endpoints[0]) is conn
        pool.release(conn)
    finally:
        pool.close()
        for s in servers:
            s.close()
