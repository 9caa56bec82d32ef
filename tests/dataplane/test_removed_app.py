"""An app removed while the data plane serves it: what is in flight for it finishes as
it would have (answered, held requests told why), its records go, and nothing that ends
afterwards (a response, a held request, a tunnel) brings them back under its name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from tests.dataplane.conftest import Proxy, Upstream, until


def remove(proxy: Proxy, app: str) -> None:
    """As the lifecycle removes an app: off the routes and board, then its records."""
    proxy.remove_app(app)
    proxy.dataplane.app_removed(app)


def gone(proxy: Proxy, app: str) -> bool:
    return app not in proxy.stats.apps and proxy.ledger.peek(app) is None


async def get(s: aiohttp.ClientSession, proxy: Proxy, host: str,
              path: str = "/") -> tuple[int, bytes]:
    async with s.get(proxy.url(path), headers={"Host": host}) as r:
        return r.status, await r.read()


async def test_a_request_in_flight_when_its_app_is_removed_is_answered_and_counted_nowhere(
    proxy: Proxy, upstream: Upstream,
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    proxy.add_app("blog", ("blog.test",), upstream.endpoint)
    upstream.gate = asyncio.Event()
    async with aiohttp.ClientSession() as s:
        assert (await get(s, proxy, "blog.test"))[0] == 200
        pending = asyncio.ensure_future(get(s, proxy, "shop.test", "/gated"))
        await until(lambda: upstream.in_flight == 1)
        remove(proxy, "shop")
        assert gone(proxy, "shop")
        upstream.gate.set()
        assert await pending == (200, b"gated done")
        assert (await get(s, proxy, "shop.test"))[0] == 404  # no app serves it now
    records = await proxy.wait_records(3)
    assert [(r.app, r.status) for r in records] == [("blog", 200), ("shop", 200), ("", 404)]
    assert gone(proxy, "shop")
    assert proxy.stats.apps["blog"].by_code == {200: 1}
    blog = proxy.ledger.peek("blog")
    assert blog is not None and blog.requests == 1 and blog.in_flight == 0


async def test_requests_held_when_their_app_is_removed_are_answered_and_leave_no_stats(
    proxy: Proxy, upstream: Upstream,
) -> None:
    proxy.add_app("shop", ("shop.test",), upstream.endpoint, awake=False)
    proxy.control.gates["shop"] = asyncio.Event()  # its wake never ends
    async with aiohttp.ClientSession() as s:
        held = [asyncio.ensure_future(get(s, proxy, "shop.test")) for _ in range(2)]
        await until(lambda: "shop" in proxy.stats.apps and proxy.stats.apps["shop"].held == 2)
        remove(proxy, "shop")
        for answer in await asyncio.gather(*held):
            assert answer[0] == 503 and b"removed" in answer[1]
    await proxy.wait_records(2)
    await asyncio.sleep(0.05)  # the hold queue's watcher has run its course
    assert gone(proxy, "shop")
    # Back under the same name: its figures start from zero (no held count below zero).
    proxy.add_app("shop", ("shop.test",), upstream.endpoint)
    async with aiohttp.ClientSession() as s:
        assert (await get(s, proxy, "shop.test"))[0] == 200
    stats = proxy.stats.apps["shop"]
    assert (stats.by_code, stats.held, sum(stats.held_duration.counts)) == ({200: 1}, 0, 0)


async def chat(proxy: Proxy, *words: str,
               between: Callable[[], None] = lambda: None) -> None:
    """Echo `words` over a WebSocket to chat.test, calling `between` after the first."""
    async with (
        aiohttp.ClientSession() as s,
        s.ws_connect(proxy.url("/ws"), headers={"Host": "chat.test"}) as ws,
    ):
        for i, word in enumerate(words):
            await ws.send_str(word)
            assert (await ws.receive(timeout=2)).data == "echo:" + word
            if i == 0:
                between()


async def test_a_tunnel_open_when_its_app_is_removed_closes_without_bringing_it_back(
    proxy: Proxy, upstream: Upstream,
) -> None:
    proxy.add_app("chat", ("chat.test",), upstream.endpoint)
    # An open tunnel is not cut by the removal of its app.
    await chat(proxy, "hi", "still here", between=lambda: remove(proxy, "chat"))
    records = await proxy.wait_records(1)
    assert (records[0].app, records[0].status) == ("chat", 101)
    assert gone(proxy, "chat")
    # Back under the same name: no tunnel counted open (nor a negative count that would
    # let a sweep stop the app under a live WebSocket).
    proxy.add_app("chat", ("chat.test",), upstream.endpoint)
    open_tunnels: list[int] = []
    await chat(proxy, "again", between=lambda: open_tunnels.append(
        proxy.ledger.get("chat").tunnels))
    assert open_tunnels == [1]
    await proxy.wait_records(2)
    assert proxy.ledger.get("chat").tunnels == 0
