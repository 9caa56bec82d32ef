"""Several wakeproxy replicas: one leader sweeps, failover, cluster-wide activity."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, app_state, get, metrics, until

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]


async def leading(wp: Wakeproxy) -> bool:
    return (await metrics(wp)).get("wakeproxy_leader") == 1


@pytest.mark.k8s_e2e
async def test_activity_on_a_follower_keeps_an_app_awake_and_the_leader_fails_over(
    cluster: Cluster, replicas: Replicas,
) -> None:
    await cluster.create_app("web", hosts="web.example.com", idle_after="1500ms")
    a = await replicas("wp-a")
    await until(lambda: leading(a), 10)
    b = await replicas("wp-b")
    assert not await leading(b)
    async with aiohttp.ClientSession() as session:
        # Only the follower gets traffic, for well over idle_after.
        for _ in range(12):
            assert (await get(session, b, "web.example.com"))[0] == 200
            await asyncio.sleep(0.25)
        assert await cluster.replicas("web") == 1
        assert await app_state(a, cluster.app_name("web")) == "awake"
        # The leader dies without a word; the follower takes the lease and sweeps.
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(a.proc.wait)
        await until(lambda: leading(b), 10)
        await until(lambda: _replicas_zero(cluster), 15)
        assert await app_state(b, cluster.app_name("web")) == "asleep"
        # And the survivor still wakes it.
        assert (await get(session, b, "web.example.com"))[0] == 200
    m = await metrics(b)
    assert m['wakeproxy_scale_calls_total{result="ok"}'] >= 2


async def _replicas_zero(cluster: Cluster) -> bool:
    return await cluster.replicas("web") == 0
