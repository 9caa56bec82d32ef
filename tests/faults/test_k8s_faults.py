"""wakeproxy on a misbehaving Kubernetes API (the emulator's fault switches).

API errors (500, 429 with Retry-After), stalls and connection resets while an app wakes:
the request is still served within `wake_timeout`. The leader killed in the middle of a
sweep: the other replica takes the lease and finishes putting the idle apps to sleep, no
app is left half-scaled, and an app in use on the survivor is never scaled down.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.e2e_k8s.cluster import Cluster, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.soak.k8s_fleet import EMULATOR, create_fast_app, replica_config, start_replica, stop
from tests.soak.support import LeanWakeproxy, figure, scrape

WAKE_TIMEOUT = 10.0


@pytest.fixture
async def emulated(make_k8s_emulator: EmulatorFactory) -> AsyncIterator[tuple[Emulator, Cluster]]:
    emulator = await make_k8s_emulator(**EMULATOR)
    cluster = await Cluster(emulator.kubeconfig, "default", emulator).open()
    try:
        yield emulator, cluster
    finally:
        await cluster.close()


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[LeanWakeproxy]]:
    started: list[LeanWakeproxy] = []
    yield started
    for wp in started:
        await asyncio.to_thread(stop, wp)


async def _one(tmp: Path, cluster: Cluster, started: list[LeanWakeproxy],
               identity: str = "wp-a") -> LeanWakeproxy:
    config = replica_config(cluster, identity, kubernetes={"request_timeout": "1s"},
                            defaults={"wake_timeout": f"{WAKE_TIMEOUT:g}s"})
    wp = await start_replica(tmp, config)
    started.append(wp)
    return wp


async def _timed_get(wp: LeanWakeproxy, app: str) -> tuple[int, str, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session, session.get(
            f"{wp.url}/hello/x", headers={"Host": f"{app}.localhost"},
            timeout=aiohttp.ClientTimeout(total=WAKE_TIMEOUT + 10)) as r:
        return r.status, await r.text(), time.monotonic() - started


@pytest.mark.parametrize("fault", ["500", "429", "stall", "reset"])
async def test_a_wake_through_api_faults_is_served_within_wake_timeout(
    fault: str, tmp_path: Path, emulated: tuple[Emulator, Cluster],
    replicas: list[LeanWakeproxy],
) -> None:
    emulator, cluster = emulated
    await create_fast_app(cluster, "web", tmp_path / "web.starts")
    wp = await _one(tmp_path, cluster, replicas)
    faults = emulator.faults
    if fault == "500":
        rules = [faults.fail(500, times=3, subresource="scale")]
    elif fault == "429":
        rules = [faults.fail(429, times=2, retry_after=1, subresource="scale")]
    elif fault == "stall":  # longer than request_timeout: the calls time out, then recover
        rules = [faults.stall(1.5, times=2, subresource="scale")]
    else:
        rules = [faults.reset(times=3, subresource="scale")]
    status, body, took = await _timed_get(wp, "web")
    assert (status, body) == (200, "web /hello/x"), (status, body)
    assert took < WAKE_TIMEOUT
    injected = sum(r.hits for r in rules)
    assert injected >= 2, f"the fault did not hit the wake ({injected} hits)"
    if fault == "429":
        assert took >= 1.0, "Retry-After was not honoured"
    # Recovery: the API is healthy again and the app serves at once.
    assert await cluster.replicas("web") == 1
    assert (await _timed_get(wp, "web"))[0] == 200
    figure("faults", f"k8s API {fault} during a wake: {injected} faults injected, "
                     f"served 200 after {took:.2f}s (wake_timeout {WAKE_TIMEOUT:g}s)")


async def test_an_api_stall_on_every_call_then_recovery(
    tmp_path: Path, emulated: tuple[Emulator, Cluster], replicas: list[LeanWakeproxy],
) -> None:
    emulator, cluster = emulated
    await create_fast_app(cluster, "web", tmp_path / "web.starts", wake_timeout="2s")
    wp = await _one(tmp_path, cluster, replicas)
    rule = emulator.faults.stall(5.0, times=None, subresource="scale")
    status, _, took = await _timed_get(wp, "web")
    assert status in (503, 504) and took < 5.0, (status, took)  # timed out, not hung
    emulator.faults.remove(rule)
    await until(lambda: _served(wp, "web"), 15, every=0.2)
    figure("faults", f"k8s API stalled on every scale call: wake answered {status} after "
                     f"{took:.2f}s (wake_timeout 2s), served once the stall ended")


async def test_the_leader_killed_mid_sweep_the_survivor_finishes_it(
    tmp_path: Path, emulated: tuple[Emulator, Cluster], replicas: list[LeanWakeproxy],
) -> None:
    emulator, cluster = emulated
    idle = ("idle1", "idle2", "idle3")
    for app in (*idle, "busy"):
        await create_fast_app(cluster, app, tmp_path / f"{app}.starts", idle_after="1s")
    a = await _one(tmp_path, cluster, replicas, "wp-a")
    await until(lambda: _leading(a), 15)
    b = await _one(tmp_path, cluster, replicas, "wp-b")
    statuses: list[int] = []
    busy_replicas: list[int] = []
    stop_traffic = asyncio.Event()

    async def traffic() -> None:
        while not stop_traffic.is_set():
            statuses.append((await _timed_get(b, "busy"))[0])
            await asyncio.sleep(0.1)

    async def watch_busy() -> None:
        while not stop_traffic.is_set():
            busy_replicas.append(await cluster.replicas("busy"))
            await asyncio.sleep(0.1)

    # Wake everything first (through b, so the busy app's activity is on the survivor).
    for app in idle:
        assert (await _timed_get(b, app))[0] == 200
    tasks = [asyncio.create_task(traffic())]
    await until(lambda: statuses.count(200) >= 3, 10)
    tasks.append(asyncio.create_task(watch_busy()))
    # Every scale write hangs for a while: the leader's sweep is caught in the middle.
    # (A scale to zero is a patch of the Deployment that records the count it replaces.)
    rule = emulator.faults.stall(3.0, times=None, verb="patch", resource="deployments")
    try:
        await until(lambda: _sweep_in_flight(emulator), 15, every=0.02)
        assert a.proc is not None
        a.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(a.proc.wait)
        emulator.faults.remove(rule)
        await until(lambda: _leading(b), 15)
        for app in idle:
            await until(lambda app=app: _asleep(cluster, app), 20, every=0.1)
    finally:
        stop_traffic.set()
        await asyncio.gather(*tasks)
    assert set(statuses) == {200}, statuses
    assert busy_replicas and set(busy_replicas) == {1}, busy_replicas
    assert await cluster.running_pods("busy") == 1
    figure("faults", f"leader SIGKILLed mid-sweep: survivor took over, {len(idle)} idle apps "
                     f"asleep (replicas 0, no pods), busy app kept 1 replica; "
                     f"{len(statuses)} requests on the survivor, all 200")


async def _served(wp: LeanWakeproxy, app: str) -> bool:
    return (await _timed_get(wp, app))[0] == 200


def _sweep_in_flight(emulator: Emulator) -> bool:
    return any(r.resource == "deployments" and r.verb == "patch" and r.status == 0
               for r in emulator.recorder.requests)


async def _leading(wp: LeanWakeproxy) -> bool:
    async with aiohttp.ClientSession() as session:
        return (await scrape(session, wp)).total("wakeproxy_leader") == 1


async def _asleep(cluster: Cluster, app: str) -> bool:
    return await cluster.replicas(app) == 0 and await cluster.running_pods(app) == 0


async def test_the_leader_does_not_scale_down_an_app_a_follower_just_started_using(
    tmp_path: Path, emulated: tuple[Emulator, Cluster], replicas: list[LeanWakeproxy],
) -> None:
    """The sweep decides on activity records up to two intervals old; the follower's
    requests since then must still count, or its traffic hits a pod being terminated."""
    _, cluster = emulated
    starts = tmp_path / "web.starts"
    await create_fast_app(cluster, "web", starts, idle_after="1500ms")
    slow = {"kubernetes": {"activity_interval": "1s"}}
    a = await start_replica(tmp_path, replica_config(cluster, "wp-a", **slow))
    replicas.append(a)
    await until(lambda: _leading(a), 15)
    b = await start_replica(tmp_path, replica_config(cluster, "wp-b", **slow))
    replicas.append(b)
    assert (await _timed_get(b, "web"))[0] == 200
    # Quiet for just under idle_after, then steady traffic on the follower only: the
    # leader's records still show the quiet when the app turns idle by them.
    await asyncio.sleep(1.35)
    statuses = []
    replicas_seen = []
    for _ in range(30):
        statuses.append((await _timed_get(b, "web"))[0])
        replicas_seen.append(await cluster.replicas("web"))
        await asyncio.sleep(0.1)
    assert set(statuses) == {200}
    assert set(replicas_seen) == {1}, replicas_seen
    assert len(starts.read_text().split()) == 1, "the app was scaled down and woken again"
