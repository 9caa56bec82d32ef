"""What a Host resolves to is cached per Host, with the app's state and records: every
change those depend on is seen by the very next request, on a kept-alive connection too
(where the plain path serves it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp

from tests.dataplane.conftest import Proxy, RawHandler, Upstream, read_head
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.routes import RouteTable


async def get(s: aiohttp.ClientSession, proxy: Proxy, path: str = "/") -> tuple[int, bytes]:
    async with s.get(proxy.url(path)) as r:
        return r.status, await r.read()


async def test_a_host_moved_to_another_app_is_served_and_counted_as_that_app(
    proxy: Proxy, upstream: Upstream
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    proxy.add_app("store", ("store.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(2):  # the second on a pooled connection: the plain path
            assert (await get(s, proxy))[0] == 200
        proxy.routes.table = RouteTable.build([("store", ("store.test", "shop.test"))])
        for _ in range(2):
            assert (await get(s, proxy))[0] == 200
    assert [r.app for r in await proxy.wait_records(4)] == ["shop", "shop", "store", "store"]
    assert proxy.ledger.get("shop").requests == 2
    assert proxy.ledger.get("store").requests == 2
    assert proxy.stats.apps["store"].by_code == {200: 2}


async def test_a_removed_app_is_unknown_and_one_added_again_is_served_with_its_new_policy(
    proxy: Proxy, upstream: Upstream
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(2):
            assert (await get(s, proxy))[0] == 200
        proxy.remove_app("shop")
        assert (await get(s, proxy))[0] == 404
        # Back, with its health checks no longer counted as use.
        proxy.add_app("shop", ("shop.test",), upstream.endpoint, ignored_paths=("/healthz",))
        activity = proxy.ledger.get("shop")
        before = (activity.requests, activity.last_access)
        for _ in range(2):
            assert (await get(s, proxy, "/healthz"))[0] == 200
        assert (activity.requests, activity.last_access) == before
        assert activity.in_flight == 0
    records = await proxy.wait_records(5)
    assert [(r.app, r.status) for r in records] == [("shop", 200)] * 2 + [("", 404)] + [
        ("shop", 200)] * 2  # fmt: skip
    assert proxy.stats.apps[""].by_code == {404: 1}


async def test_an_app_taken_off_the_board_alone_is_not_served_until_it_is_back(
    proxy: Proxy, upstream: Upstream
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(2):
            assert (await get(s, proxy))[0] == 200
        proxy.board.remove("shop")  # still routed: the app is not available
        assert (await get(s, proxy))[0] == 503
        # Back on the board, its health checks no longer counted as use.
        proxy.board.put(AppPolicy(name="shop", hosts=("shop.test",),
                                  ignored_paths=("/healthz",)))
        proxy.board.mark_waking("shop")
        proxy.board.mark_ready("shop", (upstream.endpoint,))
        requests = proxy.ledger.get("shop").requests
        for _ in range(2):
            assert (await get(s, proxy, "/healthz"))[0] == 200
        assert proxy.ledger.get("shop").requests == requests
    assert len(upstream.seen) == 4


async def test_new_endpoints_of_an_app_are_used_by_the_next_request(
    proxy: Proxy, upstream: Upstream,
    raw_upstream: Callable[[RawHandler], Awaitable[Endpoint]],
) -> None:
    async def other(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await read_head(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nother")
            await writer.drain()

    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    moved = await raw_upstream(other)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(2):
            assert (await get(s, proxy))[1] != b"other"
        proxy.board.mark_ready("shop", (moved,))
        for _ in range(2):
            assert await get(s, proxy) == (200, b"other")
    assert len(upstream.seen) == 2


async def test_a_dropped_activity_record_is_replaced_by_the_next_request(
    proxy: Proxy, upstream: Upstream
) -> None:
    """The sweeper reads the ledger's record of an app: a request after the record was
    dropped makes and updates the new one, not the dropped one."""
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        for _ in range(2):
            assert (await get(s, proxy))[0] == 200
        proxy.ledger.forget("shop")
        for _ in range(2):
            assert (await get(s, proxy))[0] == 200
    activity = proxy.ledger.peek("shop")
    assert activity is not None
    assert activity.requests == 2 and activity.in_flight == 0
    assert activity.last_access is not None
