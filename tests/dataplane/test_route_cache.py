"""What a Host resolves to is cached per Host, with the app's state and records: every
change those depend on is seen by the very next request, on a kept-alive connection too
(where the plain path serves it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
import pytest

from tests.dataplane.conftest import Proxy, RawHandler, Upstream, read_head
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.routes import RouteTable


async def get(s: aiohttp.ClientSession, proxy: Proxy, path: str = "/") -> tuple[int, bytes]:
    async with s.get(proxy.url(path)) as r:
        return r.status, await r.read()


async def served_twice(s: aiohttp.ClientSession, proxy: Proxy, path: str = "/") -> None:
    """Two requests answered 200, the second on a pooled connection: the plain path."""
    for _ in range(2):
        assert (await get(s, proxy, path))[0] == 200


async def test_a_host_moved_to_another_app_is_served_and_counted_as_that_app(
    proxy: Proxy, upstream: Upstream
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    proxy.add_app("store", ("store.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        await served_twice(s, proxy)
        proxy.routes.table = RouteTable.build([("store", ("store.test", "shop.test"))])
        await served_twice(s, proxy)
    assert [r.app for r in await proxy.wait_records(4)] == ["shop", "shop", "store", "store"]
    assert proxy.ledger.get("shop").requests == 2
    assert proxy.ledger.get("store").requests == 2
    assert proxy.stats.apps["store"].by_code == {200: 2}


@pytest.mark.parametrize("routed", [False, True])
async def test_an_app_removed_and_added_again_is_served_with_its_new_policy(
    proxy: Proxy, upstream: Upstream, routed: bool
) -> None:
    """Removed with its routes, its host is unknown (404, no app in the log); taken off
    the board alone, it is not available (503). Back, its new policy applies at once."""
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession(headers={"Host": "shop.test"}) as s:
        await served_twice(s, proxy)
        if routed:
            proxy.remove_app("shop")
        else:
            proxy.board.remove("shop")
        assert (await get(s, proxy))[0] == (404 if routed else 503)
        # Back, with its health checks no longer counted as use (on the board alone, as
        # it went, so that nothing but the board tells the data plane).
        policy = AppPolicy(name="shop", hosts=("shop.test",), ignored_paths=("/healthz",))
        if routed:
            proxy.add_app(policy.name, policy.hosts, upstream.endpoint,
                          ignored_paths=policy.ignored_paths)
        else:
            proxy.board.put(policy)
            proxy.board.mark_waking("shop")
            proxy.board.mark_ready("shop", (upstream.endpoint,))
        activity = proxy.ledger.get("shop")
        before = (activity.requests, activity.last_access)
        await served_twice(s, proxy, "/healthz")
        assert (activity.requests, activity.last_access) == before
        assert activity.in_flight == 0
    assert len(upstream.seen) == 4
    records = await proxy.wait_records(5)
    assert [(r.app, r.status) for r in records][2] == (("", 404) if routed else ("shop", 503))


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
        await served_twice(s, proxy)
        proxy.ledger.forget("shop")
        await served_twice(s, proxy)
    activity = proxy.ledger.peek("shop")
    assert activity is not None
    assert activity.requests == 2 and activity.in_flight == 0
    assert activity.last_access is not None
