"""Malformed, ambiguous and slow requests get a clear answer and never reach the app."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from tests.dataplane.conftest import (
    Proxy,
    ProxyFactory,
    Upstream,
    exchange_raw,
    parse_responses,
    read_response,
    until,
)
from tests.dataplane.realapps import real_app
from wakeproxy.model.limits import Limits


def only_response(data: bytes):
    responses = parse_responses(data)
    assert len(responses) == 1, data
    return responses[0]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
            400, id="content-length-and-transfer-encoding",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 3\r\nContent-Length: 5\r\n"
            b"\r\nabcde",
            400, id="differing-content-lengths",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            400, id="transfer-encoding-not-ending-in-chunked",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n"
            b"Transfer-Encoding: gzip\r\n\r\n",
            400, id="transfer-encoding-chunked-then-gzip",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost : shop.test\r\n\r\n", 400, id="space-before-colon",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-A: b\x01c\r\n\r\n", 400, id="control-byte",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nX\x7fA: b\r\n\r\n", 400, id="control-in-name",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-A: b\r\n folded\r\n\r\n", 400,
            id="obsolete-line-folding",
        ),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="missing-host"),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: shop.test\r\nHost: other.test\r\n\r\n", 400, id="two-hosts",
        ),
        pytest.param(b"GET / HTTP/2.0\r\nHost: shop.test\r\n\r\n", 400, id="http2-version"),
        pytest.param(b"GARBAGE\r\n\r\n", 400, id="not-http"),
        pytest.param(b"GET nowhere HTTP/1.1\r\nHost: shop.test\r\n\r\n", 400, id="bad-target"),
        pytest.param(
            b"CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n", 405, id="connect",
        ),
    ],
)  # fmt: skip
async def test_bad_requests_are_refused_and_never_reach_the_app(
    proxy: Proxy, upstream: Upstream, request_bytes: bytes, status: int
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(proxy, request_bytes)
    resp = only_response(data)  # one answer, then the connection closed
    assert resp.status == status
    assert resp.header("connection") == "close"
    assert resp.body.startswith(f"{status} ".encode())
    assert b"Traceback" not in data
    assert upstream.seen == []
    await proxy.wait_records(1)
    assert proxy.records[0].status == status and proxy.records[0].reason


async def test_absolute_form_authority_wins_over_host(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(
        proxy,
        b"GET http://Shop.Test:8080/p?q=1 HTTP/1.1\r\nHost: elsewhere.test\r\n"
        b"Connection: close\r\n\r\n",
    )
    assert only_response(data).status == 200
    seen = upstream.seen[0]
    assert seen.path == "/p?q=1"
    assert seen.headers["Host"] == "Shop.Test:8080"


async def test_oversized_head_is_431(make_proxy: ProxyFactory, upstream: Upstream):
    proxy = await make_proxy(Limits(max_head_bytes=2048, max_headers=20))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    big = b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Big: " + b"a" * 4000 + b"\r\n\r\n"
    assert only_response(await exchange_raw(proxy, big)).status == 431
    many = b"GET / HTTP/1.1\r\nHost: shop.test\r\n" + b"".join(
        b"X-H%d: v\r\n" % i for i in range(30)
    ) + b"\r\n"
    assert only_response(await exchange_raw(proxy, many)).status == 431
    assert upstream.seen == []


async def test_a_head_that_never_ends_is_cut_off_at_the_limit(
    make_proxy: ProxyFactory, upstream: Upstream
):
    proxy = await make_proxy(Limits(max_head_bytes=4096))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Endless: ")
    for _ in range(20):  # one header value growing across many reads
        writer.write(b"a" * 1000)
        await writer.drain()
        await asyncio.sleep(0.005)
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert resp.status == 431
    writer.close()


async def test_slow_head_gets_408_and_idle_keep_alive_is_closed_silently(
    make_proxy: ProxyFactory, upstream: Upstream
):
    proxy = await make_proxy(Limits(client_head_timeout=0.2, client_idle_timeout=0.3))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: sho")  # slowloris: never finishes
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert resp.status == 408
    assert await asyncio.wait_for(reader.read(), 1) == b""  # and closed
    writer.close()

    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await read_response(reader)).status == 200
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await asyncio.wait_for(reader.read(), 2) == b""  # closed without a word
    assert 0.2 < loop.time() - t0 < 1.5
    writer.close()

    # A connection that never sends anything is closed after the head timeout.
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    assert [r.status for r in proxy.records] == [408, 200]


async def test_bad_chunk_framing_mid_body_is_400_and_closes(proxy: Proxy, raw_upstream):
    got = bytearray()

    async def app(reader, writer):
        while chunk := await reader.read(65536):
            got.extend(chunk)

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    data = await exchange_raw(
        proxy,
        b"POST / HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\nZZ\r\nnot a chunk\r\n",
    )
    assert only_response(data).status == 400


async def test_errors_after_pipelined_requests_come_in_order(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(
        proxy,
        b"GET /slow?delay=0.1 HTTP/1.1\r\nHost: shop.test\r\n\r\n"
        b"GET /x HTTP/1.1\r\nHost: unknown.test\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost : broken\r\n\r\n",
    )
    assert [r.status for r in parse_responses(data)] == [200, 404, 400]


async def test_head_request_to_an_error_gets_no_body(proxy: Proxy):
    data = await exchange_raw(
        proxy, b"HEAD / HTTP/1.1\r\nHost: nope.test\r\nConnection: close\r\n\r\n"
    )
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert body == b""


async def test_connections_beyond_the_limit_are_refused(
    make_proxy: ProxyFactory, upstream: Upstream
):
    proxy = await make_proxy(Limits(max_connections=2))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    kept = [await asyncio.open_connection(proxy.host, proxy.port) for _ in range(2)]
    await until(lambda: proxy.dataplane.open_connections == 2)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        assert await asyncio.wait_for(reader.read(), 2) == b""
    writer.close()
    r, w = kept[0]
    w.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await read_response(r)).status == 200
    for _, w in kept:
        w.close()


@pytest.mark.parametrize(
    ("server", "version", "awake"),
    [("gunicorn", "1.0", True), ("uvicorn", "1.1", True), ("gunicorn", "1.1", False),
     ("uvicorn", "1.0", False)],
)
async def test_a_client_that_half_closes_after_its_request_gets_its_answer(
    proxy: Proxy, server: str, version: str, awake: bool
):
    # `nc -N` shuts its sending side down once its input ends. The request arrived whole:
    # it is answered (gunicorn and uvicorn answer it direct, HAProxy through it), then the
    # connection closes. Through a sleeping app as well.
    async with real_app(server) as endpoint:
        proxy.add_app("shop", ("shop.test",), endpoint, awake=awake)
        request = f"GET /slow?delay=0.2 HTTP/{version}\r\nHost: shop.test\r\n\r\n".encode()
        nc = await asyncio.create_subprocess_exec(
            "nc", "-N", proxy.host, str(proxy.port),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(nc.communicate(request), 10)
    response = only_response(out)
    assert (response.status, response.body) == (200, b"GET /slow ")
    (record,) = await proxy.wait_records(1)
    assert record.status == 200


async def test_pipelined_requests_before_a_half_close_are_all_answered(proxy: Proxy):
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    async with real_app("uvicorn") as endpoint:
        proxy.add_app("shop", ("shop.test",), endpoint)
        with sock:
            await loop.sock_connect(sock, (proxy.host, proxy.port))
            await loop.sock_sendall(sock, b"GET /slow?delay=0.1 HTTP/1.1\r\nHost: shop.test\r\n"
                                          b"\r\nGET /a HTTP/1.1\r\nHost: shop.test\r\n\r\n")
            sock.shutdown(socket.SHUT_WR)
            out = bytearray()
            async with asyncio.timeout(5):
                while chunk := await loop.sock_recv(sock, 65536):
                    out += chunk  # ends when the proxy closes after the second answer
    first, second = parse_responses(bytes(out))
    assert (first.body, second.body) == (b"GET /slow ", b"GET /a ")


async def test_a_request_cut_short_by_a_half_close_is_not_sent_on(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    out = await exchange_raw(proxy, b"POST /upload HTTP/1.1\r\nHost: shop.test\r\n"
                                    b"Content-Length: 100\r\n\r\nonly some", half_close=True)
    assert out == b""
    (record,) = await proxy.wait_records(1)
    assert record.status == 499
