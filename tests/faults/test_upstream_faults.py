"""Apps that die, go silent or vanish under a request: the client gets a clear answer or a
cut it can see, requests whose bytes never reached the app are not lost, and the next
request works."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import struct
import time
from pathlib import Path

import aiohttp
import pytest

from tests.dataplane.conftest import (
    ProxyFactory,
    Upstream,
    read_head,
    read_response,
    until,
)
from tests.e2e.harness import pids_alive
from tests.soak.support import fast_app, figure, started_pids
from wakeproxy.dataplane.upstream import _connected_to_itself
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.limits import Limits
from wakeproxy.platforms.local.net import connected_to_itself

GIB = 1 << 30
H = {"Host": "app.localhost"}


def dead_endpoint() -> Endpoint:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return Endpoint("127.0.0.1", s.getsockname()[1])  # nobody listens once closed


async def until_gone(pid: int, limit: float = 5.0) -> None:
    async with asyncio.timeout(limit):
        while pids_alive([pid]):  # noqa: ASYNC110 - polling another process
            await asyncio.sleep(0.01)


async def test_app_killed_mid_response_is_a_visible_cut_and_the_next_request_works(
    tmp_path: Path, start_lean
) -> None:
    starts = tmp_path / "starts"
    wp = start_lean({"apps": [fast_app("app", starts)]})
    got, killed = 0, False
    async with aiohttp.ClientSession() as s:
        for i in range(3):  # pooled connections to the app that is about to die
            async with s.get(f"{wp.url}/hello/{i}", headers=H) as r:
                assert r.status == 200
        [pid] = started_pids(starts)
        async with s.get(f"{wp.url}/download?bytes={GIB}", headers=H) as r:
            assert r.status == 200 and r.content_length == GIB
            with pytest.raises(aiohttp.ClientPayloadError):
                async for chunk in r.content.iter_chunked(1 << 16):
                    got += len(chunk)
                    if got >= 8 << 20 and not killed:
                        # Once: a dying process may already be reaped by the next chunk.
                        os.kill(pid, signal.SIGKILL)
                        killed = True
        assert 8 << 20 <= got < GIB
        await until_gone(pid)
        for i in range(5):
            async with s.get(f"{wp.url}/hello/after-{i}", headers=H) as r:
                assert (r.status, await r.text()) == (200, f"app /hello/after-{i}")
    assert len(started_pids(starts)) == 2
    figure("faults", f"app SIGKILLed mid-response after {got >> 20} MiB of 1 GiB: client saw "
                     "a short body; the next 5 requests woke it again and got 200")


async def test_an_app_that_never_answers_gets_504_and_the_connection_goes_on(
    tmp_path: Path, start_lean
) -> None:
    wp = start_lean({
        "limits": {"response_header_timeout": "300ms"},
        "apps": [fast_app("app")],
    })
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{wp.url}/hello/warm", headers=H) as r:
            assert r.status == 200
        t0 = time.monotonic()
        async with s.get(f"{wp.url}/hang", headers=H) as r:
            text = await r.text()
            assert r.status == 504
            assert "app" in text and "0.3s" in text
        assert 0.3 <= time.monotonic() - t0 < 2.0
        async with s.get(f"{wp.url}/hello/next", headers=H) as r:
            assert (r.status, await r.text()) == (200, "app /hello/next")
    figure("faults", "app accepted and never answered: 504 after the 0.3s "
                     "response_header_timeout; the next request got 200")


async def test_an_app_exiting_on_its_own_between_requests_is_woken_again(
    tmp_path: Path, start_lean
) -> None:
    """The process exits after every third answer: the next request finds a refused
    port (or a dead pooled connection) and must wait for the next wake, not get a 502."""
    starts = tmp_path / "starts"
    wp = start_lean({"apps": [fast_app("app", starts, env={"EXIT_AFTER": "3"})]})
    async with aiohttp.ClientSession() as s:
        for i in range(30):
            async with s.get(f"{wp.url}/hello/{i}", headers=H) as r:
                assert (r.status, await r.text()) == (200, f"app /hello/{i}")
        # A POST cannot be sent twice, so it is tried only where nothing received it: a
        # port the exited process no longer listens on refuses it, and it waits for the
        # next process. (Into a process in the middle of exiting, no proxy can tell.)
        for round_ in range(2):
            await until_gone(started_pids(starts)[-1])
            for i in range(3 if round_ == 0 else 1):
                body = f"round {round_} post {i}".encode()
                async with s.post(f"{wp.url}/echo", data=body, headers=H) as r:
                    assert (r.status, await r.read()) == (200, body)
    assert len(started_pids(starts)) == 12
    figure("faults", "app exited on its own 11 times between requests: 34 requests, "
                     "all answered 200 by the next process")


async def test_a_refused_connect_waits_for_the_apps_next_endpoint(
    make_proxy: ProxyFactory, upstream: Upstream
) -> None:
    proxy = await make_proxy(Limits(connect_timeout=5.0))
    proxy.add_app("shop", ("shop.test",), dead_endpoint())  # awake, but its process is gone
    proxy.control.endpoints["shop"] = upstream.endpoint  # where its next wake answers

    async def exit_noticed() -> None:
        await asyncio.sleep(0.15)
        proxy.board.mark_asleep("shop")  # what the control plane does when told it exited

    noticed = asyncio.create_task(exit_noticed())
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"POST /form HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n\r\nhello")
    resp = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    await noticed
    assert resp.status == 200 and resp.json()["body"] == "hello"
    assert [s.path for s in upstream.seen] == ["/form"]
    assert proxy.control.wakes["shop"] == 1
    [record] = await proxy.wait_records(1)
    assert record.status == 200 and record.held is not None


async def test_a_refused_connect_with_no_change_is_502_after_connect_timeout(
    make_proxy: ProxyFactory,
) -> None:
    proxy = await make_proxy(Limits(connect_timeout=0.4))
    proxy.add_app("shop", ("shop.test",), dead_endpoint())
    t0 = time.monotonic()
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    assert resp.status == 502 and b"refused" in resp.body
    assert 0.4 <= time.monotonic() - t0 < 1.5


async def test_a_dead_pooled_connection_to_a_vanished_app_waits_for_its_next_endpoint(
    make_proxy: ProxyFactory, upstream: Upstream
) -> None:
    proxy = await make_proxy()
    served = 0

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        await read_head(reader)
        served += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        await read_head(reader)  # the next request, on the pooled connection: it dies
        server.close()
        writer.transport.abort()

    server = await asyncio.start_server(app, "127.0.0.1", 0)
    old = Endpoint("127.0.0.1", server.sockets[0].getsockname()[1])
    proxy.add_app("shop", ("shop.test",), old)
    proxy.control.endpoints["shop"] = upstream.endpoint

    async def exit_noticed() -> None:
        await until(lambda: not server.is_serving())
        await asyncio.sleep(0.1)
        proxy.board.mark_asleep("shop")

    noticed = asyncio.create_task(exit_noticed())
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /first HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await asyncio.wait_for(read_response(reader), 5)).body == b"ok"
    writer.write(b"GET /second HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 5)
    writer.close()
    await noticed
    assert resp.status == 200 and resp.json()["path"] == "/second"
    assert served == 1 and [s.path for s in upstream.seen] == ["/second"]


async def test_a_reset_in_a_close_delimited_body_resets_the_client(
    make_proxy: ProxyFactory,
) -> None:
    """Its end is the connection closing: a clean close would pass a cut off as complete."""
    proxy = await make_proxy()

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"p" * 1000)
        await writer.drain()
        await asyncio.sleep(0.1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with SO_LINGER 0: a reset, not a close

    server = await asyncio.start_server(app, "127.0.0.1", 0)
    try:
        proxy.add_app("shop", ("shop.test",), Endpoint(*server.sockets[0].getsockname()[:2]))
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        received = b""
        with pytest.raises(ConnectionResetError):
            async with asyncio.timeout(3):
                while chunk := await reader.read(65536):
                    received += chunk
        writer.close()
    finally:
        server.close()
    assert not received or received.startswith(b"HTTP/1.1 200")
    [record] = await proxy.wait_records(1)
    assert record.status == 200 and "reset" in (record.reason or "")


async def test_a_socket_connected_to_itself_is_not_taken_for_an_app() -> None:
    """Connecting to a free local port can pick that very port as the source, and TCP then
    connects the socket to itself: neither the readiness probe nor the proxy may take
    that for the app answering."""
    port = dead_endpoint().port
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.connect(("127.0.0.1", port))  # a simultaneous open with itself
    assert connected_to_itself(sock)
    transport, _ = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, sock=sock)
    try:
        assert _connected_to_itself(transport)  # type: ignore[arg-type]
    finally:
        transport.close()
    with socket.create_server(("127.0.0.1", 0)) as server:
        other = socket.create_connection(server.getsockname())
        assert not connected_to_itself(other)
        other.close()
