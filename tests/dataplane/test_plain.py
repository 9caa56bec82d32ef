"""The plain path: a request with no body on a pooled connection is relayed by the
connection itself, and becomes an exchange the moment its answer needs one.

Each app here answers a first request plainly, so that its connection is pooled; the case
under test is the next request, sent on that pooled connection, which is what takes the
plain path. What a client sees must be what the exchange alone made of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from tests.dataplane.conftest import Proxy, Response, abort, read_head, read_response
from wakeproxy.model.limits import Limits

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
GET = b"GET /next HTTP/1.1\r\nHost: shop.test\r\n\r\n"

Then = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def pooled_then(proxy: Proxy, raw_upstream, then: Then) -> tuple[
    asyncio.StreamReader, asyncio.StreamWriter, list[int]
]:  # fmt: skip
    """An app whose connections answer one plain request, then do `then` with the next;
    returns a client connection that has had its first answer, and the connection count."""
    connections: list[int] = []

    async def app(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await read_head(reader)
        writer.write(OK)
        await writer.drain()
        await read_head(reader)
        await then(reader, writer)

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /first HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    first = await asyncio.wait_for(read_response(reader), 2)
    assert (first.status, first.body) == (200, b"ok")
    return reader, writer, connections


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Response:
    """Send the plain GET on a client connection and read its answer."""
    writer.write(GET)
    return await asyncio.wait_for(read_response(reader), 2)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 3)


async def test_interim_answers_on_a_pooled_connection_are_relayed(proxy: Proxy, raw_upstream):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext")

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    interim = await asyncio.wait_for(read_response(reader, head_only=True), 2)
    assert (interim.status, interim.header("link")) == (103, "</a.css>; rel=preload")
    final = await asyncio.wait_for(read_response(reader), 2)
    assert (final.status, final.body) == (200, b"next")
    writer.close()


async def test_a_chunked_answer_on_a_pooled_connection_stays_chunked(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the body in a later read than the head
        writer.write(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"abcdefg")
    assert resp.header("transfer-encoding") == "chunked"
    writer.close()


async def test_an_answer_delimited_by_close_closes_the_client_connection(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nuntil the end")
        await writer.drain()
        writer.close()

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    data = await read_all(reader)  # ends: the client connection is closed after it
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"\r\n\r\nuntil the end")
    assert b"connection: close" in data.lower()


async def test_a_head_in_pieces_and_a_body_in_several_reads_come_whole(
    proxy: Proxy, raw_upstream
):
    body = b"x" * 300_000

    async def then(reader, writer):
        for piece in (b"HTTP/1.1 200 OK\r\nContent-Le", b"ngth: 300000\r\nX-A: 1\r\n", b"\r\n"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.02)
        writer.write(body)
        await writer.drain()
        await read_head(reader)
        writer.write(OK)  # and the connection is still good for the next request

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    resp = await asyncio.wait_for(read_response(reader), 3)
    assert (resp.status, resp.body, resp.header("x-a")) == (200, body, "1")
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 1
    writer.close()


async def test_garbage_on_a_pooled_connection_is_502(proxy: Proxy, raw_upstream):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert resp.status == 502 and b"invalid response" in resp.body
    writer.close()


async def test_an_app_dying_mid_answer_on_a_pooled_connection_cuts_the_client(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()
        writer.transport.abort()

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    data = await read_all(reader)
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"only part")
    records = await proxy.wait_records(2)
    assert records[1].status == 200 and "mid-response" in (records[1].reason or "")


async def test_a_silent_app_on_a_pooled_connection_is_504_and_the_client_goes_on(
    make_proxy, raw_upstream
):
    proxy = await make_proxy(Limits(response_header_timeout=0.2))

    async def then(reader, writer):
        await asyncio.sleep(2)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert resp.status == 504 and b"shop" in resp.body
    writer.write(b"GET /after HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert (resp.status, resp.body) == (200, b"ok")  # on a new connection
    assert len(connections) == 2
    writer.close()


async def test_bytes_after_an_answer_are_never_taken_for_the_next_one(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        # One answer, and a second nobody asked for, in the same write.
        writer.write(OK + b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstale")
        await writer.drain()
        await asyncio.sleep(1)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"ok")
    writer.write(GET)  # must not get "stale": a new connection, answered plainly
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 2
    writer.close()


async def test_a_client_gone_while_its_plain_request_waits_is_499_and_frees_the_app(
    proxy: Proxy, raw_upstream
):
    closed = asyncio.Event()

    async def then(reader, writer):
        await reader.read()  # returns when the proxy closes its side
        closed.set()

    _reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    await writer.drain()
    await asyncio.sleep(0.05)
    abort(writer)
    await asyncio.wait_for(closed.wait(), 2)
    records = await proxy.wait_records(2)
    assert records[1].status == 499 and records[1].path == "/next"


async def test_a_plain_request_is_logged_and_counted_like_any_other(proxy: Proxy, raw_upstream):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 201 Created\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n"
                     b"Content-Length: 3\r\n\r\nnew")  # fmt: skip
        await writer.drain()
        await asyncio.sleep(1)

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(b"GET /next?x=1 HTTP/1.1\r\nHost: shop.test\r\nX-Request-Id: mine\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 2)
    assert (resp.status, resp.body) == (201, b"new")
    assert resp.header("connection") is None and resp.header("keep-alive") is None
    records = await proxy.wait_records(2)
    rec = records[1]
    assert (rec.app, rec.host, rec.method, rec.path, rec.status) == (
        "shop", "shop.test", "GET", "/next?x=1", 201)  # fmt: skip
    assert rec.request_id != "mine"  # not from a trusted proxy: ours
    assert rec.upstream is not None and rec.upstream.startswith("127.0.0.1:")
    assert rec.bytes_out == len(b"HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nnew")
    assert rec.bytes_in > 0 and rec.reason is None and rec.held is None
    activity = proxy.ledger.get("shop")
    assert activity.in_flight == 0 and activity.requests == 2
    assert proxy.stats.apps["shop"].by_code == {200: 1, 201: 1}
    writer.close()


async def test_requests_pipelined_behind_a_plain_one_are_answered_in_order(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        # The later requests, one after another on the pooled connection (each goes once
        # the one before is answered and the connection is back in the pool), numbered.
        n = 0
        while True:
            n += 1
            body = f"answer {n}".encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            try:
                await read_head(reader)
            except asyncio.IncompleteReadError:
                return

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    writer.write(b"".join(b"GET /p%d HTTP/1.1\r\nHost: shop.test\r\n\r\n" % i for i in range(4)))
    bodies = [(await asyncio.wait_for(read_response(reader), 2)).body for _ in range(4)]
    assert bodies == [b"answer 1", b"answer 2", b"answer 3", b"answer 4"]
    records = await proxy.wait_records(5)
    assert [r.path for r in records[1:]] == ["/p0", "/p1", "/p2", "/p3"]
    assert all(r.status == 200 for r in records)
    writer.close()


# -- answers relayed as they came ----------------------------------------------------------


async def test_a_plain_answer_reaches_the_client_as_it_came_but_for_hop_by_hop_fields(
    proxy: Proxy, raw_upstream
):
    head = (b"HTTP/1.1 200 Fine\r\nset-cookie: a=1\r\nSet-Cookie: b=2\r\nX-Spaced:  v  \r\n"
            b"%sContent-Length: 4\r\n%s\r\n")  # fmt: skip
    hop = (b"connection: Keep-Alive\r\n", b"Keep-Alive:  timeout=5\r\n")

    async def then(reader, writer):
        writer.write(head % hop + b"body")
        await writer.drain()
        await read_head(reader)
        writer.write(OK)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    expected = head % (b"", b"") + b"body"
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 2) == expected
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 1  # the app's connection went back to the pool
    records = await proxy.wait_records(2)
    assert (records[1].status, records[1].bytes_out) == (200, len(expected))
    writer.close()


@pytest.mark.parametrize("in_head", [b"Connection: keep-alive", b"Connection:keep-alive"])
async def test_a_hop_by_hop_line_is_cut_from_the_head_never_from_the_body(
    proxy: Proxy, raw_upstream, in_head: bytes
):
    """The body quotes the field's line exactly (a page about HTTP, say): only the head's
    line goes, however it is spaced, and the body arrives byte for byte."""
    body = b"\r\nConnection: keep-alive\r\n<- as an app writes it\r\nConnection: keep-alive\r\n"
    head = b"HTTP/1.1 200 OK\r\nServer: t\r\n%sContent-Length: %d\r\n\r\n"

    async def then(reader, writer):
        writer.write(head % (in_head + b"\r\n", len(body)) + body)
        await writer.drain()
        await read_head(reader)
        writer.write(OK)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    expected = head % (b"", len(body)) + body
    assert await asyncio.wait_for(reader.readexactly(len(expected)), 2) == expected
    resp = await ask(reader, writer)  # nothing more came before the next answer
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 1
    writer.close()


async def test_an_app_closing_after_its_answer_leaves_the_client_connection_open(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye")
        await writer.drain()
        writer.close()

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.body, resp.header("connection")) == (200, b"bye", None)
    resp = await ask(reader, writer)  # the same client connection, a new one to the app
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 2
    writer.close()


async def test_fields_an_answer_names_in_connection_never_reach_the_client(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Internal\r\n"
                     b"X-Internal: secret\r\nX-Public: 1\r\nContent-Length: 2\r\n\r\n"
                     b"ok")  # fmt: skip

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.header("x-public")) == (200, "1")
    assert resp.header("x-internal") is None and resp.header("connection") is None
    writer.close()


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\nTransfer-Encoding: chunked\r\n\r\n",  # bare LF
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX-A: 1\r\n folded\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nX-A: 1\rContent-Length: 2\r\n\r\nok",  # bare CR
    ],
    ids=["bare-lf", "two-lengths", "length-and-chunked", "folded", "space-before-colon",
         "bare-cr"],
)  # fmt: skip
async def test_an_answer_llhttp_refuses_is_502_and_none_of_it_is_relayed(
    proxy: Proxy, raw_upstream, answer: bytes
):
    async def then(reader, writer):
        writer.write(answer)

    reader, writer, _ = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert resp.status == 502 and b"invalid response" in resp.body
    writer.close()


async def test_a_304_with_a_length_has_no_body_and_the_connections_go_on(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 100\r\n\r\n")
        await writer.drain()
        await read_head(reader)
        writer.write(OK)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.header("etag"), resp.header("content-length")) == (
        304, '"v1"', "100")  # fmt: skip
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 1
    writer.close()


async def test_a_body_after_its_whole_head_comes_over_many_reads(proxy: Proxy, raw_upstream):
    body = bytes(range(256)) * 2000

    async def then(reader, writer):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
        await writer.drain()
        for i in range(10, len(body), 65536):
            await asyncio.sleep(0.005)
            writer.write(body[i : i + 65536])
            await writer.drain()
        await read_head(reader)
        writer.write(OK)

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    writer.write(GET)
    resp = await asyncio.wait_for(read_response(reader), 3)
    assert (resp.status, resp.body) == (200, body)
    resp = await ask(reader, writer)
    assert (resp.status, resp.body, len(connections)) == (200, b"ok", 1)
    records = await proxy.wait_records(3)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 512000\r\n\r\n"
    assert records[1].bytes_out == len(head) + len(body)
    writer.close()


async def test_an_http10_answer_on_a_pooled_connection_is_not_taken_for_keep_alive(
    proxy: Proxy, raw_upstream
):
    async def then(reader, writer):
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold")
        await writer.drain()
        writer.close()  # as an HTTP/1.0 server does unless asked to keep the connection

    reader, writer, connections = await pooled_then(proxy, raw_upstream, then)
    resp = await ask(reader, writer)
    assert (resp.status, resp.body) == (200, b"old")
    resp = await ask(reader, writer)  # never sent on the connection the app closed
    assert (resp.status, resp.body) == (200, b"ok")
    assert len(connections) == 2
    writer.close()
