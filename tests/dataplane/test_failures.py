"""Our own bugs and a broken log sink never reach a client as a traceback."""

from __future__ import annotations

import aiohttp
import structlog

from tests.dataplane.conftest import (
    Proxy,
    ProxyFactory,
    Upstream,
    exchange_raw,
    parse_responses,
)
from wakeproxy.dataplane import exchange


async def test_an_unexpected_error_is_502_logged_and_closes(
    proxy: Proxy, upstream: Upstream, monkeypatch
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)

    def broken(*args, **kwargs):
        raise RuntimeError("bug in the response path")

    monkeypatch.setattr(exchange, "response_head", broken)
    with structlog.testing.capture_logs() as logs:
        request = b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n"
        data = await exchange_raw(proxy, request + request)
    [resp] = parse_responses(data)  # one answer, then the connection closed
    assert resp.status == 502
    assert b"bug in the response path" not in data and b"Traceback" not in data
    assert resp.header("connection") == "close"
    assert any(e["log_level"] == "error" for e in logs)


async def test_a_failing_access_log_sink_does_not_break_requests(
    make_proxy: ProxyFactory, upstream: Upstream
):
    def sink(record):
        raise OSError("disk full")

    proxy = await make_proxy(access_log=sink)
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(3):
            async with s.get(proxy.url("/")) as r:
                assert r.status == 200
