"""SIGTERM while a request is held for a wake, and in the middle of a 1 GiB transfer: the
held request is served or answered 503, the transfer is finished or cut so the client
can tell — never dropped or half-written silently — and no app process is left behind."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import aiohttp

from tests.dataplane.conftest import ProxyFactory, read_response
from tests.e2e.harness import pids_alive
from tests.soak.support import LeanWakeproxy, fast_app, figure, started_pids
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.limits import Limits

H = {"Host": "app.localhost"}
GIB = 1 << 30


async def until_state(wp: LeanWakeproxy, state: str, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while wp.app_state("app") != state:
        assert time.monotonic() < deadline, f"app not {state}"
        await asyncio.sleep(0.01)


async def exited(wp: LeanWakeproxy, limit: float = 20.0) -> int:
    assert wp.proc is not None
    return await asyncio.wait_for(asyncio.to_thread(wp.proc.wait), limit)


async def test_sigterm_during_a_wake_serves_the_held_request(
    tmp_path: Path, start_lean
) -> None:
    starts = tmp_path / "starts"
    wp = start_lean({
        "drain_grace": "10s",
        "apps": [fast_app("app", starts, env={"START_DELAY": "1"})],
    })
    async with aiohttp.ClientSession() as s:
        held = asyncio.create_task(s.get(f"{wp.url}/hello/held", headers=H))
        await until_state(wp, "waking")
        assert wp.proc is not None
        wp.proc.send_signal(signal.SIGTERM)
        async with await held as r:
            assert (r.status, await r.text()) == (200, "app /hello/held")
    assert await exited(wp) == 0
    assert pids_alive(started_pids(starts)) == []
    figure("faults", "SIGTERM during a 1s wake with a 10s drain_grace: the held request "
                     "was served, then wakeproxy exited 0 and stopped the app")


async def test_sigterm_during_a_wake_past_the_grace_answers_503(
    tmp_path: Path, start_lean
) -> None:
    starts = tmp_path / "starts"
    wp = start_lean({
        "drain_grace": "300ms",
        "apps": [fast_app("app", starts, env={"START_DELAY": "5"})],
    })
    async with aiohttp.ClientSession() as s:
        held = [asyncio.create_task(s.get(f"{wp.url}/hello/{i}", headers=H)) for i in range(5)]
        await until_state(wp, "waking")
        await asyncio.sleep(0.05)
        assert wp.proc is not None
        wp.proc.send_signal(signal.SIGTERM)
        for request in held:
            async with await request as r:
                assert r.status == 503
                assert "shutting down" in await r.text()
                assert r.headers["Retry-After"].isdigit()
    assert await exited(wp) == 0
    assert pids_alive(started_pids(starts)) == []
    figure("faults", "SIGTERM during a 5s wake with a 0.3s drain_grace: 5 held requests "
                     "answered 503 with Retry-After; the starting app was stopped")


def download(wp: LeanWakeproxy, query: str, sigterm_after: int) -> tuple[bytes, int, str]:
    """GET /download raw: (head, body bytes received, how it ended: eof | reset)."""
    sock = socket.create_connection(("127.0.0.1", wp.port))
    sock.sendall(f"GET /download?{query} HTTP/1.1\r\nHost: app.localhost\r\n\r\n".encode())
    buf = bytearray(1 << 20)
    head = b""
    received, ended = 0, "eof"
    try:
        while True:
            n = sock.recv_into(buf)
            if not n:
                break
            if not head:
                data = bytes(buf[:n])
                head, _, rest = data.partition(b"\r\n\r\n")
                received = len(rest)
            else:
                received += n
            if sigterm_after and received >= sigterm_after:
                sigterm_after = 0
                assert wp.proc is not None
                wp.proc.send_signal(signal.SIGTERM)
    except ConnectionResetError:
        ended = "reset"
    finally:
        sock.close()
    return head, received, ended


async def test_sigterm_during_a_1gib_transfer_finishes_it_within_the_grace(
    tmp_path: Path, start_lean
) -> None:
    wp = start_lean({"drain_grace": "30s", "apps": [fast_app("app")]})
    head, received, ended = await asyncio.to_thread(
        download, wp, f"bytes={GIB}", 64 << 20)
    assert head.startswith(b"HTTP/1.1 200 ") and f"Content-Length: {GIB}".encode() in head
    assert (received, ended) == (GIB, "eof")
    assert await exited(wp) == 0
    figure("faults", "SIGTERM 64 MiB into a 1 GiB download with a 30s drain_grace: all "
                     "1 GiB delivered, then wakeproxy exited 0")


async def test_sigterm_during_a_1gib_transfer_past_the_grace_cuts_it_visibly(
    tmp_path: Path, start_lean
) -> None:
    wp = start_lean({
        "drain_grace": "200ms",
        "limits": {"client_send_timeout": "30s"},
        "apps": [fast_app("app")],
    })
    # Length-delimited: the client sees fewer bytes than Content-Length, then the close.
    head, received, _ = await asyncio.to_thread(download, wp, f"bytes={GIB}", 16 << 20)
    assert f"Content-Length: {GIB}".encode() in head
    assert 16 << 20 <= received < GIB
    assert await exited(wp) == 0
    figure("faults", f"SIGTERM 16 MiB into a 1 GiB download with a 0.2s drain_grace: cut at "
                     f"{received >> 20} MiB, short of its Content-Length")


async def test_a_close_delimited_transfer_cut_by_shutdown_is_reset(
    tmp_path: Path, start_lean
) -> None:
    """Its end is the connection closing, so a cut must be a reset, not a plain close."""
    wp = start_lean({"drain_grace": "200ms", "apps": [fast_app("app")]})
    head, received, ended = await asyncio.to_thread(
        download, wp, f"bytes={GIB}&close=1", 16 << 20)
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length" not in head
    assert b"Transfer-Encoding" not in head
    assert received < GIB and ended == "reset"
    assert await exited(wp) == 0
    figure("faults", "SIGTERM during a close-delimited 1 GiB download with a 0.2s "
                     "drain_grace: the client connection was reset, not closed")


async def test_a_request_waiting_for_its_apps_next_endpoint_gets_503_at_the_end_of_a_drain(
    make_proxy: ProxyFactory,
) -> None:
    proxy = await make_proxy(Limits(connect_timeout=10.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = Endpoint("127.0.0.1", s.getsockname()[1])
    proxy.add_app("shop", ("shop.test",), dead)  # its process exited; nobody noticed yet
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await asyncio.sleep(0.2)  # refused, and waiting
    await proxy.dataplane.drain(0.2)
    resp = await asyncio.wait_for(read_response(reader), 2)
    writer.close()
    assert resp.status == 503 and "shutting down" in resp.body.decode()
