"""A removed app leaves /metrics: review apps come and go all day, and each one's series
(counters, histogram buckets) must not pile up in the scrape and in Prometheus for ever.

A real `wakeproxy serve` on the local platform, a real git repository, signed webhooks,
requests through the data plane, promtool on the scrape."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from tests.controllers.gitrepo import Repo
from tests.e2e.harness import Wakeproxy, echo_command
from tests.e2e.test_review_apps import config, get, hook, payload, wait_build
from tests.ops.tools import promtool

REVIEW = 'app="pr-1-shop"'


async def scrape(s: aiohttp.ClientSession, wp: Wakeproxy) -> str:
    async with s.get(wp.admin + "/metrics") as r:
        assert r.status == 200
        return await r.text()


def series(text: str, label: str) -> list[str]:
    return [line for line in text.splitlines() if label in line and not line.startswith("#")]


def steady(lines: list[str]) -> list[str]:
    return [line for line in lines if "last_access" not in line]


async def test_a_deleted_review_app_leaves_metrics_and_comes_back_from_zero(
    tmp_path: Path, start_wakeproxy: Any,
) -> None:
    repo = Repo(tmp_path / "git")
    pids = tmp_path / "pids"
    pids.mkdir()
    v1 = repo.commit("version one", branch="feature")
    cfg = config(tmp_path, repo, pids)
    cfg["apps"].append({"name": "blog", "hosts": ["blog.localhost"],
                        "command": echo_command("blog")})
    wp = start_wakeproxy(cfg)

    async with aiohttp.ClientSession() as s:
        await hook(s, wp, payload("opened", v1))
        await wait_build(s, wp, v1, deployed=True)
        for _ in range(3):
            assert await get(s, wp) == (200, "version one")
            assert (await get(s, wp, "blog.localhost"))[0] == 200
        before = await scrape(s, wp)
        assert f'wakeproxy_requests_total{{{REVIEW},code="2xx"}} 3.0' in before
        assert f'wakeproxy_wakes_total{{{REVIEW},result="ready"}} 1.0' in before
        assert f'wakeproxy_wake_duration_seconds_count{{{REVIEW}}} 1.0' in before
        blog = series(before, 'app="blog"')
        assert 'wakeproxy_requests_total{app="blog",code="2xx"} 3.0' in blog

        # Closed: the review app is deleted; every series of it goes with it.
        await hook(s, wp, payload("closed", v1))
        deadline = time.monotonic() + 10
        while (await get(s, wp))[0] != 404 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        after = await scrape(s, wp)
        assert series(after, REVIEW) == []
        # The other apps' series are untouched (the last access aside: a wall-clock time
        # worked out from the monotonic clock at each scrape).
        assert steady(series(after, 'app="blog"')) == steady(blog)
        check = await asyncio.to_thread(promtool, "check", "metrics", stdin=after)
        assert check.returncode == 0 and check.stdout + check.stderr == "", \
            check.stdout + check.stderr

        # Opened again: the app is back, its counters from zero.
        await hook(s, wp, payload("reopened", v1))
        deadline = time.monotonic() + 15
        while (await get(s, wp))[0] != 200 and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        again = await scrape(s, wp)
        assert f'wakeproxy_requests_total{{{REVIEW},code="2xx"}} 1.0' in again
        assert f'wakeproxy_wakes_total{{{REVIEW},result="ready"}} 1.0' in again
