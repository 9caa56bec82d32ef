"""Upgrades (WebSocket) pass through as raw tunnels; declined upgrades stay plain HTTP."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.dataplane.conftest import Proxy, Upstream, read_head, read_response


async def test_websocket_echo_through_the_proxy(proxy: Proxy, upstream: Upstream):
    proxy.add_app("chat", ("chat.test",), upstream.endpoint)
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(proxy.url("/ws"), headers={"Host": "chat.test"}) as ws,
    ):
        for word in ("hello", "world", "x" * 100_000):
            await ws.send_str(word)
            msg = await ws.receive(timeout=2)
            assert msg.data == "echo:" + word
        activity = proxy.ledger.get("chat")
        assert activity.tunnels == 1 and activity.in_flight == 0
    records = await proxy.wait_records(1)
    assert records[0].status == 101 and records[0].bytes_out > 100_000
    assert proxy.ledger.get("chat").tunnels == 0


async def test_websocket_to_a_sleeping_app_is_held_then_tunnelled(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("chat", ("chat.test",), upstream.endpoint, awake=False)
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(proxy.url("/ws"), headers={"Host": "chat.test"}) as ws,
    ):
        await ws.send_str("wake")
        assert (await ws.receive(timeout=2)).data == "echo:wake"
    assert proxy.control.wakes["chat"] == 1


async def test_declined_upgrade_continues_as_plain_http(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        while True:
            head = await read_head(reader)
            assert b"upgrade: websocket" in head.lower()
            writer.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 4\r\n\r\nnope")

    proxy.add_app("chat", ("chat.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: chat.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    writer.write(upgrade + upgrade)  # the second arrives where tunnel bytes would
    for _ in range(2):
        resp = await asyncio.wait_for(read_response(reader), 2)
        assert (resp.status, resp.body) == (426, b"nope")
    writer.close()


async def test_raw_upgrade_relays_bytes_both_ways(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        head = await read_head(reader)
        assert b"connection: upgrade" in head.lower()
        writer.write(
            b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
            b"banner;"
        )
        while data := await reader.read(65536):
            writer.write(data.upper())

    proxy.add_app("raw", ("raw.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: raw.test\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nearly;"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Upgrade: echo" in head
    got = b""
    while len(got) < len(b"banner;EARLY;"):
        got += await asyncio.wait_for(reader.read(100), 2)
    assert got == b"banner;EARLY;"
    writer.write(b"more")
    assert await asyncio.wait_for(reader.readexactly(4), 2) == b"MORE"
    writer.close()
    await proxy.wait_records(1)
    assert proxy.ledger.get("raw").tunnels == 0
