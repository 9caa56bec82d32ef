"""Shutdown: in-flight requests finish, idle connections close, held ones get a 503."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.dataplane.conftest import Proxy, Upstream, read_response, until


async def test_drain_lets_in_flight_requests_finish_and_closes_idle_ones(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    idle_r, idle_w = await asyncio.open_connection(proxy.host, proxy.port)
    idle_w.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await read_response(idle_r)).status == 200

    busy_r, busy_w = await asyncio.open_connection(proxy.host, proxy.port)
    busy_w.write(b"GET /slow?delay=0.3 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await until(lambda: len(upstream.seen) >= 2)
    assert proxy.dataplane.open_connections == 2

    drain = asyncio.create_task(proxy.dataplane.drain(grace=5))
    assert await asyncio.wait_for(idle_r.read(), 1) == b""  # idle: closed at once
    resp = await asyncio.wait_for(read_response(busy_r), 2)
    assert (resp.status, resp.body) == (200, b"slow done")
    assert resp.header("connection") == "close"
    await asyncio.wait_for(drain, 2)
    assert proxy.dataplane.open_connections == 0
    with pytest.raises(OSError):
        await asyncio.open_connection(proxy.host, proxy.port)
    idle_w.close()
    busy_w.close()


async def test_drain_answers_requests_still_held_with_503(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.gates["shop"] = asyncio.Event()  # the wake never finishes
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        pending = asyncio.create_task(s.get(proxy.url("/")))
        await until(lambda: proxy.dataplane.held_requests >= 1)
        await proxy.dataplane.drain(grace=0.2)
        async with await pending as r:
            assert r.status == 503
            assert "shutting down" in await r.text()
    assert proxy.dataplane.held_requests == 0
    assert proxy.records[0].status == 503


async def test_drain_cuts_requests_still_running_at_the_end_of_the_grace(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /slow?delay=5 HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await until(lambda: upstream.seen)
    await asyncio.wait_for(proxy.dataplane.drain(grace=0.1), 2)
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()
