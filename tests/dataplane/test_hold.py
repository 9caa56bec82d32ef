"""Requests for a sleeping app are held, one wake is asked for, and they are served."""

from __future__ import annotations

import asyncio
import time

import aiohttp

from tests.dataplane.conftest import Proxy, Upstream, abort, read_response, until
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.board import Phase


async def test_held_request_is_served_once_the_app_wakes(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.delay = 0.1
    async with (
        aiohttp.ClientSession() as s,
        s.post(proxy.url("/p"), data=b"held body", headers={"Host": "shop.test"}) as r,
    ):
        assert r.status == 200
        assert (await r.json())["body"] == "held body"
    assert proxy.control.wakes["shop"] == 1
    rec = proxy.records[0]
    assert rec.status == 200 and rec.held is not None and rec.held >= 0.09
    stats = proxy.stats.apps["shop"]
    assert stats.held == 0 and sum(stats.held_duration.counts) == 1
    assert proxy.ledger.get("shop").requests == 1 and proxy.ledger.get("shop").in_flight == 0


async def test_many_held_requests_share_one_wake(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers={"Host": "shop.test"}
    ) as s:

        async def one(i: int) -> int:
            async with s.get(proxy.url(f"/r{i}")) as r:
                await r.read()
                return r.status

        tasks = [asyncio.create_task(one(i)) for i in range(200)]
        await until(lambda: proxy.dataplane.held_requests >= 200)
        assert proxy.stats.apps["shop"].held == 200
        assert upstream.seen == []
        gate.set()
        statuses = await asyncio.gather(*tasks)
    assert statuses == [200] * 200
    assert proxy.control.wakes["shop"] == 1
    assert len(upstream.seen) == 200
    assert proxy.dataplane.held_requests == 0


async def test_hold_times_out_with_504_naming_the_app(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, wake_timeout=0.2)
    proxy.control.gates["shop"] = asyncio.Event()  # never ready
    async with (
        aiohttp.ClientSession() as s,
        s.get(proxy.url("/"), headers={"Host": "shop.test"}) as r,
    ):
        assert r.status == 504
        assert "shop" in await r.text()
        assert int(r.headers["Retry-After"]) > 0
    assert proxy.records[0].status == 504 and proxy.records[0].held is not None
    assert proxy.stats.apps["shop"].held == 0


async def test_each_held_request_times_out_on_its_own_deadline(
    proxy: Proxy, upstream: Upstream
):
    """Also when the app's wake_timeout is shortened while a request is already held."""
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, wake_timeout=0.8)
    proxy.control.gates["shop"] = asyncio.Event()  # never ready
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:

        async def one(path: str) -> tuple[int, float]:
            started = loop.time()
            async with s.get(proxy.url(path)) as r:
                await r.read()
                return r.status, loop.time() - started

        slow = asyncio.create_task(one("/slow"))
        await until(lambda: proxy.dataplane.held_requests == 1)
        proxy.add_app("shop", ("shop.test",), awake=False, wake_timeout=0.2)
        fast = [asyncio.create_task(one(f"/fast{i}")) for i in range(3)]
        answers = await asyncio.gather(*fast)
        assert proxy.dataplane.held_requests == 1  # the first one still waits its turn
        slow_status, slow_took = await slow
    for status, took in answers:
        assert status == 504 and 0.15 <= took < 0.6
    assert slow_status == 504 and slow_took >= 0.75
    assert proxy.dataplane.held_requests == 0


async def test_full_hold_queue_answers_503_with_retry_after(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, max_held_requests=2)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        held = [asyncio.create_task(s.get(proxy.url("/"))) for _ in range(2)]
        await until(lambda: proxy.dataplane.held_requests >= 2)
        async with s.get(proxy.url("/")) as r:
            assert r.status == 503
            assert "shop" in await r.text()
            assert "Retry-After" in r.headers
        gate.set()
        for t in held:
            async with await t as r:
                assert r.status == 200
    assert proxy.stats.apps["shop"].rejected_held == 1


async def test_failed_wake_answers_502_naming_the_reason(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.failures["shop"] = "image pull failed"
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        async with s.get(proxy.url("/")) as r:
            assert r.status == 502
            text = await r.text()
            assert "shop" in text and "image pull failed" in text
        # The next request asks for a fresh wake rather than inheriting the old failure.
        del proxy.control.failures["shop"]
        async with s.get(proxy.url("/")) as r:
            assert r.status == 200
    assert proxy.control.wakes["shop"] == 2


async def test_client_leaving_while_held_is_logged_499_and_never_sent(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    _reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    writer.write(b"GET /gone HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    await writer.drain()
    await until(lambda: proxy.dataplane.held_requests >= 1)
    # Gone for good (a reset); a client that only half-closes is still answered.
    abort(writer)
    records = await proxy.wait_records(1)
    assert records[0].status == 499 and records[0].held is not None
    assert proxy.dataplane.held_requests == 0
    assert proxy.stats.apps["shop"].held == 0
    gate.set()
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/after")) as r,
    ):
        assert r.status == 200
    assert [s.path for s in upstream.seen] == ["/after"]
    assert proxy.ledger.get("shop").in_flight == 0


async def test_browsers_get_a_waiting_page_when_enabled(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, waiting_page=True,
                  waiting_page_after=0.3)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        t0 = time.monotonic()
        async with s.get(proxy.url("/"), headers={"Accept": "text/html,*/*"}) as r:
            assert r.status == 503
            assert time.monotonic() - t0 >= 0.3  # held first: the app might have woken
            page = await r.text()
            assert "Waking up shop" in page and 'http-equiv="refresh"' in page
            assert r.headers["Cache-Control"] == "no-store"
            assert "Retry-After" in r.headers
        await asyncio.sleep(0.05)
        assert proxy.board.get("shop").phase is Phase.WAKING  # the page asked for the wake
        # An API client is held instead.
        api = asyncio.create_task(s.get(proxy.url("/"), headers={"Accept": "application/json"}))
        await until(lambda: proxy.dataplane.held_requests >= 1)
        gate.set()
        async with await api as r:
            assert r.status == 200
        async with s.get(proxy.url("/"), headers={"Accept": "text/html"}) as r:
            assert r.status == 200  # awake now: the real page


async def test_a_browser_gets_an_app_that_wakes_quickly_without_the_waiting_page(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, waiting_page=True)
    proxy.control.delay = 0.2  # well within waiting_page_after's default 1s
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/"), headers={"Accept": "text/html"}) as r,
    ):
        assert r.status == 200
    (record,) = proxy.records
    assert record.held is not None and 0.15 < record.held < 1.0


async def test_waiting_page_mentions_a_failed_wake(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False, waiting_page=True,
                  waiting_page_after=0.1)
    proxy.board.mark_waking("shop")
    proxy.board.mark_wake_failed("shop", "out of memory")
    proxy.control.gates["shop"] = asyncio.Event()
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/"), headers={"Accept": "text/html"}) as r,
    ):
        assert r.status == 503
        assert "out of memory" in await r.text()


async def test_release_is_in_step_with_capacity(proxy: Proxy, upstream: Upstream):
    proxy.add_app(
        "shop", ("shop.test",), upstream.endpoint, awake=False, release_concurrency=3
    )
    gate = proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers={"Host": "shop.test"}
    ) as s:

        async def one() -> int:
            async with s.get(proxy.url("/slow?delay=0.05")) as r:
                await r.read()
                return r.status

        tasks = [asyncio.create_task(one()) for _ in range(12)]
        await until(lambda: proxy.dataplane.held_requests >= 12)
        gate.set()
        assert await asyncio.gather(*tasks) == [200] * 12
    assert upstream.max_in_flight == 3


async def test_requests_arriving_once_awake_bypass_the_release_queue(
    proxy: Proxy, upstream: Upstream
):
    proxy.add_app(
        "shop", ("shop.test",), upstream.endpoint, awake=False, release_concurrency=1
    )
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), headers={"Host": "shop.test"}
    ) as s:
        first = asyncio.create_task(s.get(proxy.url("/gated")))
        second = asyncio.create_task(s.get(proxy.url("/gated")))
        await until(lambda: len(upstream.seen) >= 1)
        await asyncio.sleep(0.05)
        assert len(upstream.seen) == 1  # the second held one waits for the first's head
        async with s.get(proxy.url("/")) as r:  # not held: goes straight through
            assert r.status == 200
        upstream.gate.set()
        for t in (first, second):
            async with await t as r:
                assert r.status == 200


async def test_scale_down_racing_the_wake_asks_again(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        pending = asyncio.create_task(s.get(proxy.url("/")))
        await until(lambda: proxy.board.get("shop").phase is Phase.WAKING)
        # The wake is abandoned without a failure (e.g. a sweep raced it).
        proxy.board.mark_asleep("shop")
        await until(lambda: proxy.control.wakes["shop"] >= 2)
        gate.set()
        async with await pending as r:
            assert r.status == 200


async def test_app_removed_while_held(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.gates["shop"] = asyncio.Event()
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        pending = asyncio.create_task(s.get(proxy.url("/")))
        await until(lambda: proxy.dataplane.held_requests >= 1)
        proxy.remove_app("shop")
        async with await pending as r:
            assert r.status == 503
            assert "shop" in await r.text()


async def test_held_upload_body_waits_in_the_kernel(proxy: Proxy, upstream: Upstream):
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    gate = proxy.control.gates["shop"] = asyncio.Event()
    reader, writer = await asyncio.open_connection(proxy.host, proxy.port)
    body = b"z" * 32_000_000  # more than the kernel buffers of both ends hold
    writer.write(
        b"POST /p HTTP/1.1\r\nHost: shop.test\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    writer.write(body)
    await until(lambda: proxy.dataplane.held_requests >= 1)
    await asyncio.sleep(0.1)
    # The client could not push the whole body: the proxy stopped reading it.
    assert writer.transport.get_write_buffer_size() > 0
    gate.set()
    resp = await asyncio.wait_for(read_response(reader), 5)
    assert resp.status == 200 and len(resp.json()["body"]) == len(body)
    writer.close()


async def test_held_request_for_an_unreachable_endpoint_is_502(proxy: Proxy, raw_upstream):
    async def refuse(reader, writer):
        writer.close()

    dead = await raw_upstream(refuse)
    proxy.add_app("shop", ("shop.test",), Endpoint(dead.host, dead.port), awake=False)
    async with (
        aiohttp.ClientSession(headers={"Host": "shop.test"}) as s,
        s.get(proxy.url("/")) as r,
    ):
        assert r.status == 502
        assert "shop" in await r.text()
