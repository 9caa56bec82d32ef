"""Environments on Kubernetes through a real `wakeproxy serve`: a Deployment annotated
with an awake schedule whose window is open is scaled up with no request at all and kept
up past its idle-after; one annotated `idle-after: never` is never scaled to zero."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, app_state, get, until

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]
OPEN_NOW = '{time_zone: UTC, windows: [{cron: "* * * * *", for: 10m}]}'


async def _is(state: Coroutine[Any, Any, int | str], wanted: int | str) -> bool:
    return await state == wanted


@pytest.mark.k8s_e2e
async def test_a_scheduled_app_is_scaled_up_before_anyone_asks_and_kept_up(
    cluster: Cluster, replicas: Replicas,
) -> None:
    await cluster.create_app("staging", hosts="staging.example.com", idle_after="1s",
                             awake_schedule=OPEN_NOW)
    await cluster.create_app("prod", hosts="prod.example.com", idle_after="never")
    await cluster.create_app("other", hosts="other.example.com", idle_after="1s")
    wp = await replicas()
    await until(lambda: _is(cluster.replicas("staging"), 1), 15)  # no request sent
    await until(lambda: _is(app_state(wp, cluster.app_name("staging")), "awake"), 15)
    async with aiohttp.ClientSession() as session:
        for host in ("prod.example.com", "other.example.com"):
            assert (await get(session, wp, host))[0] == 200
    await until(lambda: _is(cluster.replicas("other"), 0), 20)  # swept after its 1s
    await asyncio.sleep(2)  # staging's idle-after twice over, inside its window
    assert await cluster.replicas("staging") == 1
    assert await cluster.replicas("prod") == 1
