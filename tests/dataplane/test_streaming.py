"""Big bodies stream through with flat memory: each side's backpressure pauses the other."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from tests.dataplane.conftest import Proxy, ProxyFactory, Upstream, read_response
from wakeproxy.model.limits import Limits

SIZE = 200 * 1024 * 1024
# The proxy runs in this process; without backpressure a stalled side would make it
# buffer most of the 200 MB. Kernel socket buffers and allocator slack stay well below.
RSS_GROWTH_LIMIT = 48 * 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


@contextlib.asynccontextmanager
async def peak_rss_growth():
    base = rss()
    peak = [0]

    async def sample() -> None:
        while True:
            peak[0] = max(peak[0], rss() - base)
            await asyncio.sleep(0.01)

    task = asyncio.create_task(sample())
    try:
        yield peak
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        peak[0] = max(peak[0], rss() - base)


async def test_200mb_download_with_a_stalled_client_keeps_memory_flat(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("files", ("files.test",), upstream.endpoint)
    async with peak_rss_growth() as growth:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port, limit=1 << 20)
        writer.write(b"GET /download?size=%d HTTP/1.1\r\nHost: files.test\r\n\r\n" % SIZE)
        await asyncio.sleep(0.3)  # not reading: the app must be paused, not buffered
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and b"Content-Length: %d" % SIZE in head
        got = 0
        while got < SIZE:
            chunk = await reader.read(1 << 20)
            assert chunk
            got += len(chunk)
        writer.close()
    assert got == SIZE
    assert growth[0] < RSS_GROWTH_LIMIT, f"RSS grew by {growth[0] / 2**20:.0f} MiB"
    rec = (await proxy.wait_records(1))[0]
    assert rec.status == 200 and rec.bytes_out > SIZE


async def test_200mb_upload_to_a_slow_app_keeps_memory_flat(proxy: Proxy, upstream: Upstream):
    proxy.add_app("files", ("files.test",), upstream.endpoint)
    chunk = b"u" * (1 << 20)
    async with peak_rss_growth() as growth:
        reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
        writer.write(
            b"POST /upload?delay=0.3 HTTP/1.1\r\nHost: files.test\r\nContent-Length: %d\r\n\r\n"
            % SIZE
        )
        for _ in range(SIZE // len(chunk)):
            writer.write(chunk)
            await writer.drain()
        resp = await asyncio.wait_for(read_response(reader), 30)
        writer.close()
    assert resp.status == 200 and int(resp.body) == SIZE
    assert growth[0] < RSS_GROWTH_LIMIT, f"RSS grew by {growth[0] / 2**20:.0f} MiB"


async def test_chunked_upload_is_reframed_for_the_app(proxy: Proxy, upstream: Upstream):
    proxy.add_app("files", ("files.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"POST /upload HTTP/1.1\r\nHost: files.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    total = 0
    for i in range(50):
        part = bytes([65 + i % 26]) * (10_000 + i)
        writer.write(b"%x\r\n%s\r\n" % (len(part), part))
        total += len(part)
        if i % 10 == 0:
            await writer.drain()
    writer.write(b"0\r\nX-Checksum: 1\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 5)
    assert resp.status == 200 and int(resp.body) == total
    writer.close()


async def test_a_slow_but_steady_reader_is_never_cut(
    make_proxy: ProxyFactory, upstream: Upstream
):
    # The send deadline is about no progress (like nginx's send_timeout), not a deadline
    # set once when writing pauses: a client reading 4 KB/s keeps its download long past
    # client_send_timeout, although writing stays paused all that time (the transport's
    # buffer cannot drain to its low-water mark at that pace). A small receive buffer
    # makes the client's window reopen every few KB, as on a real network link (on
    # loopback the segment size is 64 KB, so a big window would open only every 16 s).
    proxy = await make_proxy(Limits(client_send_timeout=1.0))
    proxy.add_app("files", ("files.test",), upstream.endpoint)
    size = 16 << 20
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)  # the smallest Linux allows
    sock.setblocking(False)
    await loop.sock_connect(sock, (proxy.host, proxy.port))
    await loop.sock_sendall(sock, b"GET /download?size=%d HTTP/1.1\r\nHost: files.test\r\n"
                                  b"Connection: close\r\n\r\n" % size)
    got = 0
    with sock:
        for _ in range(16):  # 1 KB every 0.25 s for 4 s: four times the send timeout
            await asyncio.sleep(0.25)
            got += len(await loop.sock_recv(sock, 1024))
        while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 5):
            got += len(chunk)
    # The whole body came (and a head of a few hundred bytes); a cut reader would have
    # had only what the kernel buffers held, then a reset or a hang.
    assert size < got < size + 400, got
    (record,) = await proxy.wait_records(1)
    assert record.status == 200 and record.reason is None, record
