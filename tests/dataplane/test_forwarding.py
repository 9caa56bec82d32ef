"""Requests for an awake app reach it, and its answers reach the client, intact."""

from __future__ import annotations

import asyncio
import ipaddress

import aiohttp

from tests.dataplane.conftest import (
    Proxy,
    ProxyFactory,
    Upstream,
    exchange_raw,
    parse_responses,
    read_response,
    until,
)


async def test_get_and_post_with_length_and_chunked_bodies(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        async with s.get(proxy.url("/items?page=2")) as r:
            assert r.status == 200
            assert (await r.json())["path"] == "/items?page=2"
        async with s.post(proxy.url("/orders"), data=b"a=1&b=2") as r:
            got = await r.json()
            assert (got["method"], got["body"]) == ("POST", "a=1&b=2")

        async def chunks():
            for part in (b"first,", b"second,", b"third"):
                yield part

        async with s.post(proxy.url("/stream"), data=chunks()) as r:
            got = await r.json()
            assert got["body"] == "first,second,third"
            assert got["headers"]["Transfer-Encoding"] == "chunked"
    assert [rec.status for rec in proxy.records] == [200, 200, 200]
    assert proxy.records[0].app == "shop" and proxy.records[0].upstream == str(upstream.endpoint)


async def test_keep_alive_reuses_one_upstream_connection(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(20):
            async with s.get(proxy.url("/")) as r:
                assert r.status == 200
                await r.read()
    assert len(upstream.seen) == 20
    assert len(upstream.connections) == 1


async def test_host_port_case_and_trailing_dot_route_to_the_app(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    for host in ("shop.test", "SHOP.Test:8080", "shop.test.", "shop.test.:80"):
        data = await exchange_raw(
            proxy, f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        assert parse_responses(data)[0].status == 200, host


async def test_wildcard_host(proxy: Proxy, upstream: Upstream):
    proxy.add_app("review", ("*.review.test",), upstream.endpoint)
    async with aiohttp.ClientSession() as s:
        async with s.get(proxy.url("/"), headers={"Host": "pr-7.review.test"}) as r:
            assert r.status == 200
        async with s.get(proxy.url("/"), headers={"Host": "a.b.review.test"}) as r:
            assert r.status == 200
        async with s.get(proxy.url("/"), headers={"Host": "review.test"}) as r:
            assert r.status == 404


async def test_unknown_host_is_404_naming_the_host(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with (
        aiohttp.ClientSession() as s,
        s.get(proxy.url("/"), headers={"Host": "nope.test"}) as r,
    ):
        assert r.status == 404
        assert "nope.test" in await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
    assert proxy.records[-1].app == "" and proxy.records[-1].status == 404
    assert proxy.stats.apps[""].by_code == {404: 1}
    assert upstream.seen == []


async def test_x_forwarded_host_is_never_used_for_routing(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession() as s:
        headers = {"Host": "nope.test", "X-Forwarded-Host": "shop.test"}
        async with s.get(proxy.url("/"), headers=headers) as r:
            assert r.status == 404
        headers = {"Host": "shop.test", "X-Forwarded-Host": "nope.test"}
        async with s.get(proxy.url("/"), headers=headers) as r:
            assert r.status == 200
            assert (await r.json())["headers"]["X-Forwarded-Host"] == "shop.test"


async def test_hop_by_hop_headers_are_dropped_and_forwarded_headers_set(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    request = (
        b"GET /h HTTP/1.1\r\nHost: shop.test\r\nConnection: keep-alive, X-Secret\r\n"
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n"
        b"Trailer: X-T\r\nX-Secret: 1\r\nX-Kept: yes\r\n"
        b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\nX-Request-Id: spoofed\r\n"
        b"\r\n"
    )
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(request)
    resp = await read_response(reader)
    writer.close()
    seen = upstream.seen[0].headers
    for name in ("Keep-Alive", "Proxy-Connection", "TE", "Trailer", "X-Secret", "Upgrade"):
        assert name not in seen, name
    assert seen.get("Connection", "keep-alive").lower() == "keep-alive"  # aiohttp's default
    assert seen["X-Kept"] == "yes"
    assert seen["X-Forwarded-For"] == "127.0.0.1"  # the spoofed chain is not believed
    assert seen["X-Forwarded-Proto"] == "http"
    assert seen["X-Forwarded-Host"] == "shop.test"
    rid = seen["X-Request-Id"]
    assert rid != "spoofed" and rid == proxy.records[0].request_id
    assert resp.status == 200


async def test_trusted_proxy_headers_are_kept_and_extended(
    make_proxy: ProxyFactory, upstream: Upstream
):
    proxy = await make_proxy(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    headers = {
        "Host": "shop.test", "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "shop.example.com", "X-Request-Id": "edge-42",
    }  # fmt: skip
    async with aiohttp.ClientSession() as s, s.get(proxy.url("/"), headers=headers) as r:
        assert r.status == 200
    seen = upstream.seen[0].headers
    assert seen["X-Forwarded-For"] == "203.0.113.9, 127.0.0.1"
    assert seen["X-Forwarded-Proto"] == "https"
    assert seen["X-Forwarded-Host"] == "shop.example.com"
    assert seen["X-Request-Id"] == "edge-42"


async def test_response_hop_by_hop_headers_are_dropped(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, X-Internal\r\n"
                b"Keep-Alive: timeout=3\r\nX-Internal: secret\r\nX-Public: ok\r\n\r\nhi"
            )

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await read_response(reader)
    writer.close()
    names = {k.lower() for k, _ in resp.headers}
    assert resp.body == b"hi"
    assert "x-public" in names
    assert not names & {"keep-alive", "x-internal", "connection"}


async def test_head_response_has_no_body_and_the_connection_goes_on(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nget")

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for _ in range(2):
        writer.write(b"HEAD / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        head = await read_response(reader, head_only=True)
        assert head.status == 200 and head.header("content-length") == "1234"
        writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
        assert (await read_response(reader)).body == b"get"
    writer.close()


async def test_204_and_304_have_no_body(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for code in (204, 304, 200):
        writer.write(f"GET /status/{code} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode())
        resp = await read_response(reader)
        assert resp.status == code
    assert resp.body == b"xxxxx"  # the connection framing survived the bodiless answers
    writer.close()


async def test_expect_100_continue_is_relayed(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        assert b"expect: 100-continue" in head.lower()
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        body = await reader.readexactly(5)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + body.upper())

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(
        b"PUT /u HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
    )
    interim = await asyncio.wait_for(read_response(reader), 2)
    assert interim.status == 100
    writer.write(b"hello")
    final = await read_response(reader)
    assert (final.status, final.body) == (200, b"HELLO")
    writer.close()


async def test_interim_responses_are_relayed_before_the_final_one(proxy: Proxy, raw_upstream):
    async def app(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n")
        writer.write(b"HTTP/1.1 102 Processing\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    data = await exchange_raw(
        proxy, b"GET / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    )
    assert [r.status for r in parse_responses(data)] == [103, 102, 200]
    assert b"Link: </a.css>" in data


async def test_pipelined_requests_are_answered_in_order(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    requests = b"".join(
        [
            b"GET /slow?delay=0.1 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            b"POST /p1 HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /p2 HTTP/1.1\r\nHost: shop.test\r\n\r\n",
            b"POST /p3 HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nxy\r\n0\r\n\r\n",
            b"GET /p4 HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n",
        ]
    )
    responses = parse_responses(await exchange_raw(proxy, requests))
    assert [r.status for r in responses] == [200] * 5
    assert responses[0].body == b"slow done"
    bodies = [r.json() for r in responses[1:]]
    assert [(b["path"], b["body"]) for b in bodies] == [
        ("/p1", "abc"), ("/p2", ""), ("/p3", "xy"), ("/p4", ""),
    ]  # fmt: skip


async def test_connection_close_from_the_client_closes_after_the_answer(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(
        proxy,
        b"GET /a HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
        b"GET /b HTTP/1.1\r\nHost: shop.test\r\n\r\n",
    )
    responses = parse_responses(data)
    assert len(responses) == 1 and responses[0].header("connection") == "close"
    assert [s.path for s in upstream.seen] == ["/a"]


async def test_http10_keeps_alive_only_when_asked(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(proxy, b"GET / HTTP/1.0\r\nHost: shop.test\r\n\r\n", limit=2)
    assert parse_responses(data)[0].status == 200  # and the proxy closed: exchange_raw returned
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.0\r\nHost: shop.test\r\nConnection: keep-alive\r\n\r\n")
        resp = await read_response(reader)
        assert resp.status == 200 and resp.header("connection") == "keep-alive"
    writer.close()


async def test_chunked_response_is_streamed_as_chunked(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /chunked HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await read_response(reader)
    assert resp.header("transfer-encoding") == "chunked"
    assert resp.body == b"part0;part1;part2;"
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert (await read_response(reader)).status == 200  # still keep-alive
    writer.close()


async def test_read_until_close_response_closes_the_client_connection(
    proxy: Proxy, raw_upstream
):
    async def app(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of ")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b"this until close")
        await writer.drain()
        writer.close()

    proxy.add_app("shop", ("shop.test",), await raw_upstream(app))
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    resp = await asyncio.wait_for(read_response(reader), 3)  # reads until the close
    assert resp.body == b"all of this until close"
    assert resp.header("connection") == "close"
    writer.close()
    assert proxy.records[0].status == 200


async def test_activity_is_counted_while_in_flight_but_not_for_ignored_paths(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, ignored_paths=("/healthz",))
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        pending = asyncio.create_task(s.get(proxy.url("/gated")))
        await until(lambda: upstream.seen)
        activity = proxy.ledger.get("shop")
        assert activity.in_flight == 1 and activity.busy
        upstream.gate.set()
        async with await pending as r:
            assert r.status == 200
        assert activity.in_flight == 0 and activity.requests == 1
        before = activity.last_access
        async with s.get(proxy.url("/healthz?full=1")) as r:
            assert r.status == 200
        assert activity.requests == 1  # the health check did not count
        assert activity.last_access == before
    assert proxy.stats.apps["shop"].by_code == {200: 2}


async def test_an_ignored_path_is_in_flight_while_it_runs_but_never_keeps_the_app_awake(
    proxy: Proxy, upstream: Upstream
):
    # A slow health check: in flight (a sweep must not cut it off), yet not activity.
    proxy.add_app("probe", ("probe.test",), upstream.endpoint, ignored_paths=("/gated",))
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "probe.test"}) as s:
        pending = asyncio.create_task(s.get(proxy.url("/gated")))
        await until(lambda: upstream.seen)
        activity = proxy.ledger.get("probe")
        assert activity.in_flight == 1 and activity.busy
        upstream.gate.set()
        async with await pending as r:
            assert r.status == 200
    assert activity.in_flight == 0
    assert activity.requests == 0 and activity.last_access is None


async def test_chunked_response_to_an_http10_client_is_delimited_by_close(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    data = await exchange_raw(proxy, b"GET /chunked HTTP/1.0\r\nHost: shop.test\r\n\r\n")
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in head.lower()
    assert b"Connection: close" in head
    assert body == b"part0;part1;part2;"
