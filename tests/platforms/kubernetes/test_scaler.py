"""Scaling through the scale subresource: preconditions, conflicts, throttling, outages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable

import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.resources import DEPLOYMENTS
from tests.platforms.kubernetes.support import api_client, app_deployment, replicas_of, scale_writes
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.annotations import AppSpec
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.scaler import ScaleContested, Scaler, ScaleUnavailable

SPEC = AppSpec("default", "web", "web", "http",
               AppPolicy(name="default.web", hosts=("web.example.com",), awake_replicas=2), "")


@pytest.fixture
async def scalers(k8s_emulator: Emulator) -> AsyncIterator[Callable[[], Scaler]]:
    """Scalers with clients of their own, as separate wakeproxy replicas would have."""
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", replicas=0))
    clients = []
    stats = PlatformStats(leader=False)

    async def make() -> Scaler:
        client = await api_client(k8s_emulator)
        clients.append(client)
        return Scaler(Api(client, timeout=2.0, stats=stats), stats)

    made: list[Scaler] = []

    def factory() -> Scaler:
        return made.pop()

    for _ in range(3):
        made.append(await make())
    yield factory
    for c in clients:
        await c.close()


def deadline(seconds: float = 5.0) -> float:
    return asyncio.get_running_loop().time() + seconds


async def test_scale_up_writes_awake_replicas_once(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    scaler = scalers()
    written = await scaler.scale_up(SPEC, deadline=deadline())
    assert written is not None and written.replicas == 2
    assert replicas_of(k8s_emulator, "web") == 2
    # Already running: nothing to write.
    assert await scaler.scale_up(SPEC, deadline=deadline()) is None
    assert scale_writes(k8s_emulator, "web") == 1
    update = k8s_emulator.recorder.matching(verb="update", subresource="scale")[0]
    assert update.status == 200


async def test_replicas_racing_to_wake_one_app_make_one_scale_call(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    racers = [scalers(), scalers(), scalers()]
    results = await asyncio.gather(*(s.scale_up(SPEC, deadline=deadline()) for s in racers))
    assert sum(r is not None for r in results) == 1
    assert scale_writes(k8s_emulator, "web") == 1
    assert replicas_of(k8s_emulator, "web") == 2


async def test_a_409_is_reread_and_decided_again(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    k8s_emulator.faults.fail(409, verb="update", subresource="scale", times=2)
    scaler = scalers()
    written = await scaler.scale_up(SPEC, deadline=deadline())
    assert written is not None and replicas_of(k8s_emulator, "web") == 2
    reads = k8s_emulator.recorder.matching(verb="get", subresource="scale")
    assert len(reads) == 3  # every conflict is followed by a fresh read
    stats = scaler._stats
    assert stats.scale_calls == {"conflict": 2, "ok": 1}


async def test_sleep_never_undoes_another_writers_change(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "web",
                              lambda d: d["spec"].update(replicas=1))
    # Our write is held up; meanwhile someone (an HPA) scales the app to 3.
    k8s_emulator.faults.stall(0.3, verb="patch", resource="deployments")
    scaler = scalers()
    sleeping = asyncio.create_task(scaler.scale_down(SPEC, deadline=deadline()))
    await asyncio.sleep(0.1)
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "web",
                              lambda d: d["spec"].update(replicas=3))
    with pytest.raises(ScaleContested):
        await sleeping
    assert replicas_of(k8s_emulator, "web") == 3


async def test_throttling_and_server_errors_honour_retry_after(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    k8s_emulator.faults.fail(429, verb="update", subresource="scale", retry_after=1)
    k8s_emulator.faults.fail(503, verb="get", subresource="scale", retry_after=1)
    started = time.monotonic()
    written = await scalers().scale_up(SPEC, deadline=deadline())
    assert written is not None
    assert time.monotonic() - started >= 1.9  # two waits of at least a second each


async def test_an_unreachable_api_fails_as_unavailable_at_the_deadline(
    k8s_emulator: Emulator, scalers: Callable[[], Scaler],
) -> None:
    scaler = scalers()
    await k8s_emulator.down()
    started = time.monotonic()
    with pytest.raises(ScaleUnavailable) as e:
        await scaler.scale_up(SPEC, deadline=deadline(0.6))
    assert 0.4 <= time.monotonic() - started < 1.5
    assert "could not be reached" in e.value.reason
    await k8s_emulator.up()
    assert await scaler.scale_up(SPEC, deadline=deadline()) is not None
