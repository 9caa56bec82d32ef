"""Access control on a running wakeproxy: admin writes need the exact token, and /metrics
carries neither secrets nor labels that grow with what clients send."""

from __future__ import annotations

import asyncio
import random
import string

import aiohttp

from tests.soak.support import fast_app, figure, scrape

TOKEN = "t0ken-" + "".join(random.choices(string.ascii_letters, k=24))


async def test_admin_writes_need_the_exact_bearer_token(start_lean) -> None:
    wp = start_lean({"admin_token": TOKEN, "apps": [fast_app("app")]})
    wrong = [
        {},
        {"Authorization": TOKEN},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"Authorization": f"Bearer {TOKEN[1:]}{TOKEN[0]}"},
        {"X-Token": TOKEN},
    ]
    async with aiohttp.ClientSession() as s:
        for path in ("/api/v1/apps/app/wake", "/api/v1/apps/app/sleep",
                     "/api/v1/apps/ghost/wake"):
            for headers in wrong:
                async with s.post(wp.admin + path, headers=headers) as r:
                    assert r.status == 401, (path, headers)
            async with s.post(f"{wp.admin}{path}?token={TOKEN}") as r:
                assert r.status == 401
        assert wp.app_state("app") == "asleep"  # nothing above woke it
        async with s.post(wp.admin + "/api/v1/apps/app/wake", json={},
                          headers={"Authorization": f"bearer {TOKEN}"}) as r:
            assert r.status == 200
        # Reads stay open, and never show the token.
        async with s.get(wp.admin + "/api/v1/apps") as r:
            assert r.status == 200 and TOKEN not in await r.text()
    figure("hostile", f"admin API: {3 * (len(wrong) + 1)} writes with a missing, malformed "
                      "or near-miss token all 401; the token compare is hmac.compare_digest")


async def test_metrics_series_do_not_grow_with_paths_hosts_or_clients(start_lean) -> None:
    wp = start_lean({"admin_token": TOKEN, "apps": [fast_app("app")]})
    rng = random.Random(6)

    def junk(n: int) -> str:
        return "".join(rng.choices(string.ascii_lowercase + string.digits, k=n))

    async def batch(s: aiohttp.ClientSession, n: int) -> set[str]:
        async def one(i: int) -> str:
            path = f"/{junk(12)}?{junk(6)}={junk(30)}"
            host = "app.localhost" if i % 2 else f"{junk(10)}.localhost"
            source = f"127.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
            connector = aiohttp.TCPConnector(local_addr=(source, 0))
            async with (
                aiohttp.ClientSession(connector=connector) as c,
                c.get(wp.url + path, headers={"Host": host, "User-Agent": junk(20)}) as r,
            ):
                await r.read()
            return path

        paths = await asyncio.gather(*(one(i) for i in range(n)))
        metrics = await scrape(s, wp)
        for p in paths:
            assert p.split("?")[0][1:] not in metrics.text
        return metrics.series()

    async with aiohttp.ClientSession() as s:
        first = await batch(s, 100)
        second = await batch(s, 300)
        text = (await scrape(s, wp)).text
    assert second == first, sorted(second ^ first)
    assert TOKEN not in text and '"127.' not in text and "localhost" not in text
    figure("hostile", f"/metrics: {len(first)} series after 100 requests with random paths, "
                      "hosts and client addresses, the same after 300 more; no token, path, "
                      "host or client address in it")
