"""The controllers' API calls cannot starve the data plane's: each has its own client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
from kubernetes_asyncio import client

from tests.k8s_emulator import Emulator
from tests.platforms.kubernetes.support import World, app_deployment
from wakeproxy.model.board import Phase

MakeWorld = Callable[..., Coroutine[Any, Any, World]]


async def test_builds_following_logs_do_not_starve_a_wake(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    world = await make_world(k8s_emulator)
    api = world.platform.controllers_api
    core = client.CoreV1Api(api.client)
    # Many builds at once, each holding a long-lived stream (as a followed build log
    # does), more than any pool holds.
    streams: list[aiohttp.ClientResponse] = []

    async def hold() -> None:
        streams.append(await api.stream(core.list_namespaced_pod, "default", watch=True,
                                        timeout_seconds=60, idle_timeout=60))

    holders = [asyncio.create_task(hold()) for _ in range(40)]
    try:
        await asyncio.sleep(0.5)
        assert len(streams) < 40  # the controllers' pool is full: the rest wait
        async with asyncio.timeout(5):
            await world.lifecycle.wake("default.web")
        assert world.state("default.web").phase is Phase.AWAKE
    finally:
        for task in holders:
            task.cancel()
        await asyncio.gather(*holders, return_exceptions=True)
        for resp in streams:
            resp.release()
            resp.close()
