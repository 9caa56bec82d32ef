"""wakeproxy on a misbehaving API (emulator only: it has the fault switches)."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, app_state, get, metrics, until
from tests.k8s_emulator import Emulator

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]


async def test_a_409_on_scale_is_reread_and_the_request_served(
    cluster: Cluster, emulator: Emulator, replicas: Replicas,
) -> None:
    await cluster.create_app("web", hosts="web.example.com")
    wp = await replicas()
    emulator.faults.fail(409, verb="update", subresource="scale", times=2)
    async with aiohttp.ClientSession() as session:
        status, body, _ = await get(session, wp, "web.example.com")
    assert status == 200 and "hello from web" in body
    m = await metrics(wp)
    assert m['wakeproxy_scale_calls_total{result="conflict"}'] == 2
    assert m['wakeproxy_scale_calls_total{result="ok"}'] == 1
    assert m['wakeproxy_api_errors_total{code="409"}'] >= 2


async def test_a_410_in_the_middle_of_a_watch_misses_nothing(
    cluster: Cluster, emulator: Emulator, replicas: Replicas,
) -> None:
    await cluster.create_app("old", hosts="old.example.com")
    wp = await replicas()
    emulator.faults.expire_watches()  # every open watch: ERROR 410, history compacted
    await cluster.create_app("new", hosts="new.example.com")
    await cluster.annotate("old", hosts="renamed.example.com")
    async with aiohttp.ClientSession() as session:
        await until(lambda: _served(session, wp, "new.example.com"), 10)
        await until(lambda: _served(session, wp, "renamed.example.com"), 10)
        assert (await get(session, wp, "old.example.com"))[0] == 404
    m = await metrics(wp)
    assert m['wakeproxy_watch_restarts_total{resource="deployments"}'] >= 1
    assert m['wakeproxy_watch_restarts_total{resource="endpointslices"}'] >= 1


async def test_api_outage_awake_apps_served_wakes_answer_503_then_recover(
    cluster: Cluster, emulator: Emulator, replicas: Replicas,
) -> None:
    await cluster.create_app("up", hosts="up.example.com")
    await cluster.create_app("down", hosts="down.example.com", wake_timeout="1s")
    wp = await replicas()
    async with aiohttp.ClientSession() as session:
        assert (await get(session, wp, "up.example.com"))[0] == 200
        await emulator.down()
        for _ in range(3):  # served from what was known, while the API is away
            assert (await get(session, wp, "up.example.com"))[0] == 200
        started = time.monotonic()
        status, body, headers = await get(session, wp, "down.example.com")
        took = time.monotonic() - started
        assert status == 503, body
        assert "Retry-After" in headers
        assert "could not be reached" in body
        assert 0.9 <= took < 5
        await emulator.up()
        # Everything recovers by itself: the next request wakes the app.
        await until(lambda: _served(session, wp, "down.example.com"), 15, every=0.3)
        assert (await get(session, wp, "up.example.com"))[0] == 200
    assert await app_state(wp, cluster.app_name("down")) == "awake"


async def _served(session: aiohttp.ClientSession, wp: Wakeproxy, host: str) -> bool:
    return (await get(session, wp, host))[0] == 200
