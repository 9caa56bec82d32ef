"""Slow and stalled clients: each is timed out on its own, with memory flat, while everyone
else is served."""

from __future__ import annotations

import asyncio
import socket
import time

import aiohttp

from tests.dataplane.conftest import ProxyFactory, Upstream, until
from tests.soak.support import LeanWakeproxy, fast_app, figure
from wakeproxy.model.limits import Limits

H = {"Host": "app.localhost"}
MIB = 1 << 20


async def read_all(reader: asyncio.StreamReader, limit: float) -> bytes:
    out = b""
    async with asyncio.timeout(limit):
        while chunk := await reader.read(65536):
            out += chunk
    return out


def slow_config(**limits: str) -> dict[str, object]:
    return {"limits": limits, "apps": [fast_app("app", idle_after="300ms")]}


async def test_slowloris_heads_get_408_and_are_closed_while_others_are_served(
    start_lean,
) -> None:
    wp: LeanWakeproxy = start_lean(slow_config(client_head_timeout="500ms"))
    n = 100

    async def slowloris() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", wp.port)
        t0 = time.monotonic()
        writer.write(b"GET /hello HTTP/1.1\r\nHost: app.localhost\r\n")
        answer = asyncio.create_task(read_all(reader, 3))
        while not answer.done():
            writer.write(b"X")  # one byte of a header name, now and then
            await asyncio.sleep(0.05)
        data = await answer
        writer.close()
        return data, time.monotonic() - t0

    async def silent() -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", wp.port)
        t0 = time.monotonic()
        data = await read_all(reader, 3)
        writer.close()
        return data, time.monotonic() - t0

    async with aiohttp.ClientSession() as s:
        attackers = asyncio.gather(*(slowloris() for _ in range(n)), silent())
        served = 0
        while not attackers.done():
            async with s.get(f"{wp.url}/hello/ok", headers=H) as r:
                assert r.status == 200
                served += 1
            await asyncio.sleep(0.02)
        results = await attackers
    *heads, quiet = results
    for data, seconds in heads:
        assert data.startswith(b"HTTP/1.1 408 "), data[:100]
        assert b"Connection: close" in data
        assert 0.45 <= seconds < 2
    assert quiet[0] == b"" and 0.45 <= quiet[1] < 2  # never sent anything: closed quietly
    figure("faults", f"{n} slowloris heads: all 408 and closed after the 0.5s "
                     f"client_head_timeout; {served} normal requests served meanwhile")


async def test_a_stalled_request_body_gets_408_and_a_slow_one_goes_through(start_lean) -> None:
    wp: LeanWakeproxy = start_lean(slow_config(client_body_timeout="500ms"))
    async with aiohttp.ClientSession() as s, s.get(f"{wp.url}/hello/x", headers=H) as r:
        assert r.status == 200

    reader, writer = await asyncio.open_connection("127.0.0.1", wp.port)
    t0 = time.monotonic()
    writer.write(b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100000\r\n\r\n")
    writer.write(b"b" * 1000)
    data = await read_all(reader, 3)
    writer.close()
    assert data.startswith(b"HTTP/1.1 408 ") and b"made no progress for 0.5s" in data
    assert 0.45 <= time.monotonic() - t0 < 2

    # A body that keeps coming, however slowly, is not cut.
    reader, writer = await asyncio.open_connection("127.0.0.1", wp.port)
    writer.write(b"POST /echo HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 8\r\n"
                 b"Connection: close\r\n\r\n")
    for byte in b"trickled":
        writer.write(bytes([byte]))
        await asyncio.sleep(0.2)
    data = await read_all(reader, 3)
    writer.close()
    assert data.startswith(b"HTTP/1.1 200 ") and data.endswith(b"\r\n\r\ntrickled")
    figure("faults", "stalled upload: 408 after the 0.5s client_body_timeout; an upload "
                     "trickling a byte per 0.2s for 1.6s went through")


async def test_slow_readers_keep_memory_flat(start_lean) -> None:
    wp: LeanWakeproxy = start_lean(slow_config())
    readers, size = 20, 24 * MIB
    async with aiohttp.ClientSession() as s:
        async with s.get(f"{wp.url}/hello/warm", headers=H) as r:
            assert r.status == 200
        rss_before = wp.rss_kib()
        rss_peak = rss_before

        async def slow_read() -> int:
            got = 0
            async with s.get(f"{wp.url}/download?bytes={size}", headers=H) as r:
                async for chunk in r.content.iter_chunked(256 * 1024):
                    got += len(chunk)
                    await asyncio.sleep(0.01)  # ~25 MiB/s at most: far slower than the app
            return got

        async def watch() -> None:
            nonlocal rss_peak
            while True:
                rss_peak = max(rss_peak, wp.rss_kib())
                await asyncio.sleep(0.05)

        watcher = asyncio.create_task(watch())
        got = await asyncio.gather(*(slow_read() for _ in range(readers)))
        watcher.cancel()
    assert got == [size] * readers
    grew = (rss_peak - rss_before) // 1024
    # Buffering what the readers had not read yet would take hundreds of MiB.
    assert grew < 40, (rss_before, rss_peak)
    figure("faults", f"{readers} slow readers of {size // MIB} MiB each: wakeproxy grew "
                     f"{grew} MiB at most")


async def test_a_client_that_stops_reading_is_cut_and_its_app_can_sleep(start_lean) -> None:
    wp: LeanWakeproxy = start_lean(slow_config(client_send_timeout="500ms"))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", wp.port))
    sock.sendall(f"GET /download?bytes={256 * MIB} HTTP/1.1\r\nHost: app.localhost\r\n\r\n"
                 .encode())
    t0 = time.monotonic()
    await asyncio.sleep(0.2)
    assert wp.app_state("app") == "awake"
    # Reads nothing: wakeproxy must give up on it, or the app would stay busy forever.
    deadline = time.monotonic() + 5
    while wp.app_state("app") != "asleep":
        assert time.monotonic() < deadline, "the stalled download kept the app awake"
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - t0
    sock.setblocking(False)
    received, reset = 0, False
    try:
        while chunk := sock.recv(1 << 20):
            received += len(chunk)
    except BlockingIOError:
        pass
    except ConnectionResetError:
        reset = True
    sock.close()
    assert reset or received < 256 * MIB
    figure("faults", f"a client that stopped reading a 256 MiB download was cut after the "
                     f"0.5s client_send_timeout; its app was asleep {seconds:.1f}s after")


async def test_an_idle_websocket_is_closed_after_tunnel_idle_timeout(
    make_proxy: ProxyFactory, upstream: Upstream
) -> None:
    proxy = await make_proxy(Limits(tunnel_idle_timeout=0.3))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.ws_connect(proxy.url("/ws")) as ws,
    ):
        for i in range(8):  # talking every 0.1s for 0.8s: kept open
            await ws.send_str(f"m{i}")
            assert (await ws.receive_str()) == f"echo:m{i}"
            last = time.monotonic()
            await asyncio.sleep(0.1)
        msg = await ws.receive(timeout=3)  # silence: the proxy closes it
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                            aiohttp.WSMsgType.ERROR)
        assert 0.25 <= time.monotonic() - last < 1.5
    await until(lambda: proxy.ledger.get("shop").tunnels == 0)
    figure("faults", "an idle WebSocket was closed after the 0.3s tunnel_idle_timeout; one "
                     "talking every 0.1s stayed open")
