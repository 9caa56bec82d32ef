"""The Kubernetes platform under the real lifecycle: discovery, wakes, sleeps, outages."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.resources import DEPLOYMENTS, PODS
from tests.platforms.kubernetes.support import (
    APPSERVER,
    World,
    app_deployment,
    replicas_of,
    scale_writes,
    until,
)
from wakeproxy.controlplane.errors import WakeError, WakeTimedOut
from wakeproxy.model.board import FailureKind, Phase
from wakeproxy.platforms.kubernetes import InCluster

MakeWorld = Callable[..., Coroutine[Any, Any, World]]


async def get(endpoint: Any, path: str = "/") -> int:
    async with aiohttp.ClientSession() as session, session.get(
        f"http://{endpoint.host}:{endpoint.port}{path}", timeout=aiohttp.ClientTimeout(total=5),
    ) as resp:
        return resp.status


def annotate(emulator: Emulator, name: str, **notes: str) -> None:
    def change(d: dict[str, Any]) -> None:
        d["metadata"].setdefault("annotations", {}).update(
            {f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in notes.items()})
    emulator.store.mutate(DEPLOYMENTS, "default", name, change)


def set_replicas(emulator: Emulator, name: str, replicas: int) -> None:
    emulator.store.mutate(DEPLOYMENTS, "default", name,
                          lambda d: d["spec"].update(replicas=replicas))


async def test_wake_of_a_sleeping_deployment(k8s_emulator: Emulator, make_world: MakeWorld) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    world = await make_world(k8s_emulator)
    assert world.routes.table.resolve("web.example.com") == "default.web"
    state = world.state("default.web")
    assert state.phase is Phase.ASLEEP
    waking = [asyncio.create_task(world.lifecycle.wake("default.web")) for _ in range(50)]
    await asyncio.gather(*waking)
    assert state.phase is Phase.AWAKE
    assert await get(state.endpoints[0]) == 200
    assert scale_writes(k8s_emulator, "web") == 1
    assert replicas_of(k8s_emulator, "web") == 1
    assert world.stats.scale_calls == {"ok": 1}


async def test_a_pod_accepting_tcp_gets_no_request_before_its_readiness_probe_passes(
    k8s_emulator: Emulator, make_world: MakeWorld, tmp_path: Path,
) -> None:
    # The app accepts connections at once, but its readinessProbe (/ready) fails for its
    # first seconds (it warms a cache, runs migrations...).
    hits, ready = tmp_path / "hits", tmp_path / "ready"
    body = app_deployment("web", hosts="web.example.com", command=[
        sys.executable, str(APPSERVER), "--ready-file", str(ready), "--hits", str(hits)])
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"},
                                   "periodSeconds": 10}
    k8s_emulator.create(body)
    world = await make_world(k8s_emulator)
    waking = asyncio.create_task(world.lifecycle.wake("default.web"))
    await until(lambda: hits.exists(), 10)  # it runs and answers
    await asyncio.sleep(2.0)
    assert not waking.done(), "released before the readiness probe passed"
    ready.write_text("ok")
    opened = time.monotonic()
    await waking
    assert time.monotonic() - opened < 1.5  # probes slowed down, but not to a crawl
    ours = [line for line in hits.read_text().splitlines() if "wakeproxy-probe" in line]
    assert ours and all(line.startswith("/ready ") for line in ours)
    # Over the 2 s+ of a slow start: a few probes that back off, not one every 5 ms.
    assert len(ours) <= 15, len(ours)


async def test_an_exec_readiness_probe_is_left_to_the_kubelet(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    # wakeproxy cannot run the command: it waits for the EndpointSlice to say ready.
    body = app_deployment("web", hosts="web.example.com")
    container = body["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = {"exec": {"command": ["true"]}}
    k8s_emulator.create(body)
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.web")
    assert k8s_emulator.ready_ports("web")  # the slice's word, not a probe of ours


async def test_apps_are_added_reannotated_and_deleted_live(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    world = await make_world(k8s_emulator)
    assert len(world.board) == 0
    k8s_emulator.create(app_deployment("shop", hosts="shop.example.com", idle_after="2m"))
    await until(lambda: world.routes.table.resolve("shop.example.com") == "default.shop")
    assert world.state("default.shop").policy.idle_after == 120
    annotate(k8s_emulator, "shop", hosts="store.example.com, *.store.example.com")
    await until(lambda: world.routes.table.resolve("a.store.example.com") == "default.shop")
    assert world.routes.table.resolve("shop.example.com") is None
    # Dropping the label removes it as surely as deleting it.
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "shop",
                              lambda d: d["metadata"]["labels"].pop("wakeproxy.io/enabled"))
    await until(lambda: world.board.get("default.shop") is None)
    assert world.routes.table.resolve("store.example.com") is None
    k8s_emulator.create(app_deployment("blog", hosts="blog.example.com"))
    await until(lambda: world.board.get("default.blog") is not None)
    k8s_emulator.store.delete(DEPLOYMENTS, "default", "blog")
    await until(lambda: world.board.get("default.blog") is None)
    assert len(world.routes.table) == 0


async def test_a_deployment_claiming_a_taken_host_is_refused_without_harm(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("first", hosts="shop.example.com"))
    world = await make_world(k8s_emulator)
    k8s_emulator.create(app_deployment("second", hosts="shop.example.com, other.example.com"))
    k8s_emulator.create(app_deployment("broken", hosts="x.example.com", port="not a port"))
    k8s_emulator.create(app_deployment("fine", hosts="fine.example.com"))
    await until(lambda: world.board.get("default.fine") is not None)
    refused = world.platform.view.catalog.refused
    assert "already claimed by app 'default.first'" in refused["default.second"]
    assert "wakeproxy.io/port" in refused["default.broken"]
    assert world.stats.apps_refused == refused
    assert world.routes.table.resolve("shop.example.com") == "default.first"
    assert world.routes.table.resolve("other.example.com") is None
    await world.lifecycle.wake("default.first")
    k8s_emulator.store.delete(DEPLOYMENTS, "default", "first")
    await until(lambda: world.routes.table.resolve("shop.example.com") == "default.second")


async def test_scaled_by_hand_is_awake_and_scaled_away_is_asleep(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    world = await make_world(k8s_emulator)
    state = world.state("default.web")
    set_replicas(k8s_emulator, "web", 2)
    await until(lambda: state.phase is Phase.AWAKE and len(state.endpoints) == 2, 10)
    assert state.woke_at is not None and time.monotonic() - state.woke_at < 10
    assert world.wake_stats.wakes == {}  # nobody asked wakeproxy for it
    # Requests are spread over both pods.
    assert {state.pick(), state.pick()} == set(state.endpoints)
    set_replicas(k8s_emulator, "web", 0)
    await until(lambda: state.phase is Phase.ASLEEP, 10)
    # The next request wakes it again.
    await world.lifecycle.wake("default.web")
    assert state.phase is Phase.AWAKE


async def test_an_app_whose_pods_all_vanish_is_no_longer_served(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.web")
    state = world.state("default.web")
    pod = k8s_emulator.pods(app="web")[0]["metadata"]["name"]
    k8s_emulator.store.delete(PODS, "default", pod)
    await until(lambda: state.phase is Phase.ASLEEP, 10)
    await world.lifecycle.wake("default.web")  # the replacement pod, no second scale call
    assert state.phase is Phase.AWAKE
    assert scale_writes(k8s_emulator, "web") == 1


async def test_the_leader_sweeps_idle_apps_to_zero(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", idle_after="300ms"))
    world = await make_world(k8s_emulator, sweep=True)
    await until(world.platform.leader, 5)
    await world.lifecycle.wake("default.web")
    state = world.state("default.web")
    await until(lambda: state.phase is Phase.ASLEEP, 5)
    assert replicas_of(k8s_emulator, "web") == 0
    await until(lambda: not k8s_emulator.pods(app="web"), 10)


async def test_a_sleep_contested_by_another_writer_keeps_the_app(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.web")
    k8s_emulator.faults.stall(0.3, verb="patch", resource="deployments")  # the scale to 0
    sleeping = asyncio.create_task(world.lifecycle.sleep("default.web"))
    await asyncio.sleep(0.1)
    set_replicas(k8s_emulator, "web", 2)  # a person scales it up meanwhile
    await sleeping
    state = world.state("default.web")
    await until(lambda: state.phase is Phase.AWAKE and len(state.endpoints) == 2, 10)
    assert replicas_of(k8s_emulator, "web") == 2


async def test_api_outage_keeps_awake_apps_and_fails_wakes_as_unavailable(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("up", hosts="up.example.com", wake_timeout="1s"))
    k8s_emulator.create(app_deployment("down", hosts="down.example.com", wake_timeout="1s"))
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.up")
    up = world.state("default.up")
    await k8s_emulator.down()
    started = time.monotonic()
    with pytest.raises(WakeError) as e:
        await world.lifecycle.wake("default.down")
    assert 0.9 <= time.monotonic() - started < 2.5
    down = world.state("default.down")
    assert down.failure is not None and down.failure.kind is FailureKind.UNAVAILABLE
    assert "could not be reached" in e.value.reason
    # The awake app is still served from what was known.
    assert up.phase is Phase.AWAKE and await get(up.endpoints[0]) == 200
    await k8s_emulator.up()
    await until(lambda: world.platform.leader(), 10)  # everything recovers by itself
    await world.lifecycle.wake("default.down")
    assert down.phase is Phase.AWAKE and await get(down.endpoints[0]) == 200


async def test_in_cluster_config_over_tls(
    make_k8s_emulator: EmulatorFactory, make_world: MakeWorld,
) -> None:
    emulator = await make_k8s_emulator(tls=True)
    assert emulator.incluster is not None and emulator.base_url.startswith("https://")
    emulator.create(app_deployment("web", hosts="web.example.com"))
    files = emulator.incluster
    incluster = InCluster(files.environ["KUBERNETES_SERVICE_HOST"],
                          files.environ["KUBERNETES_SERVICE_PORT"],
                          token_file=str(files.token_path), ca_file=str(files.ca_path))
    world = await make_world(emulator, incluster=incluster)
    await world.lifecycle.wake("default.web")
    assert world.state("default.web").phase is Phase.AWAKE


async def test_a_scale_up_that_never_serves_is_given_up_after_give_up_after(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("mute", hosts="mute.example.com", wake_timeout="800ms",
                                       give_up_after="2s",
                                       command=["/bin/sh", "-c", "exec sleep 30"]))
    world = await make_world(k8s_emulator)
    started = time.monotonic()
    with pytest.raises(WakeTimedOut) as e:
        await world.lifecycle.wake("default.mute")
    assert "still starting" in e.value.reason and "not ready" in e.value.reason
    assert replicas_of(k8s_emulator, "mute") == 1  # the request gave up, the scale-up not
    await until(lambda: replicas_of(k8s_emulator, "mute") == 0, 5)
    assert 1.9 <= time.monotonic() - started < 4.0
    # Up, then back down at give_up_after: the API server stores the write before the
    # client has its answer and counts the call, so the count may follow a moment later.
    await until(lambda: world.stats.scale_calls == {"ok": 2}, 2)
    assert world.stats.scale_ups_given_up == {"give_up_after": 1}
    await until(lambda: not k8s_emulator.pods(app="mute"), 10)


@pytest.mark.parametrize("slow", ["image pull", "scheduling"])
async def test_a_slow_start_outlives_the_wake_and_the_next_request_joins_it(
    k8s_emulator: Emulator, make_world: MakeWorld, slow: str,
) -> None:
    k8s_emulator.create(app_deployment("big", hosts="big.example.com", wake_timeout="1s"))
    # Longer than the wake timeout: a large image, or a node the autoscaler adds.
    if slow == "image pull":
        k8s_emulator.kubelet.pulls.delay = 2.5
    else:
        k8s_emulator.kubelet.scheduling.delay = 2.5
    world = await make_world(k8s_emulator)
    started = time.monotonic()
    with pytest.raises(WakeTimedOut) as e:
        await world.lifecycle.wake("default.big")
    assert ("ContainerCreating" if slow == "image pull" else "Unschedulable") in e.value.reason
    assert replicas_of(k8s_emulator, "big") == 1
    await asyncio.sleep(1.0)
    # The next request joins the pull in progress: it does not start over.
    await world.lifecycle.wake("default.big")
    assert time.monotonic() - started < 4.0
    assert world.state("default.big").phase is Phase.AWAKE
    assert scale_writes(k8s_emulator, "big") == 1
    assert len(k8s_emulator.pods(app="big")) == 1


async def test_a_crash_looping_app_fails_its_wake_and_is_scaled_back(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("crash", hosts="crash.example.com", wake_timeout="20s",
                                       command=["/bin/sh", "-c", "echo broken; exit 3"]))
    world = await make_world(k8s_emulator)
    started = time.monotonic()
    with pytest.raises(WakeError) as e:
        await world.lifecycle.wake("default.crash")
    assert "CrashLoopBackOff" in e.value.reason
    assert time.monotonic() - started < 10  # long before the 20 s wake timeout
    assert world.stats.scale_ups_given_up == {"crash_loop": 1}
    await until(lambda: replicas_of(k8s_emulator, "crash") == 0, 5)


async def test_an_image_that_cannot_be_pulled_gives_up_after_the_pull_grace(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("gone", hosts="gone.example.com", wake_timeout="20s"))
    k8s_emulator.kubelet.pulls.failure = "manifest unknown"
    world = await make_world(k8s_emulator, image_pull_grace=1.5)
    started = time.monotonic()
    waking = asyncio.create_task(world.lifecycle.wake("default.gone"))
    await asyncio.sleep(1.0)
    # A registry hiccup may pass: within the grace the scale-up stands.
    assert not waking.done() and replicas_of(k8s_emulator, "gone") == 1
    with pytest.raises(WakeError) as e:
        await waking
    assert "ImagePull" in e.value.reason and "manifest unknown" in e.value.reason
    assert 1.5 <= time.monotonic() - started < 8  # the grace, then the next look
    assert world.stats.scale_ups_given_up == {"image_pull": 1}
    await until(lambda: replicas_of(k8s_emulator, "gone") == 0, 5)
    assert scale_writes(k8s_emulator, "gone") == 2  # up once, back down once


async def test_a_wake_restores_the_replica_count_the_app_had_before_sleeping(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", replicas=3))
    world = await make_world(k8s_emulator)
    state = world.state("default.web")
    await until(lambda: state.phase is Phase.AWAKE and len(state.endpoints) == 3, 10)
    await world.lifecycle.sleep("default.web")
    stored = k8s_emulator.store.get(DEPLOYMENTS, "default", "web")
    assert stored["spec"]["replicas"] == 0
    assert stored["metadata"]["annotations"]["wakeproxy.io/replicas-before-sleep"] == "3"
    await until(lambda: world.state("default.web").policy.awake_replicas == 3, 5)
    await world.lifecycle.wake("default.web")
    assert replicas_of(k8s_emulator, "web") == 3
    # Also after a restart: the count is on the Deployment, not in a replica's memory.
    await world.lifecycle.sleep("default.web")
    restarted = await make_world(k8s_emulator, identity="wp-1")
    await restarted.lifecycle.wake("default.web")
    assert replicas_of(k8s_emulator, "web") == 3


async def test_a_pod_that_stays_unschedulable_gives_up_after_its_grace(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("huge", hosts="huge.example.com", wake_timeout="20s"))
    k8s_emulator.kubelet.scheduling.delay = None  # no node will ever fit it
    world = await make_world(k8s_emulator, unschedulable_grace=1.5)
    started = time.monotonic()
    with pytest.raises(WakeError) as e:
        await world.lifecycle.wake("default.huge")
    assert "cannot be scheduled" in e.value.reason and "Insufficient cpu" in e.value.reason
    assert world.stats.scale_ups_given_up == {"unschedulable": 1}
    assert 1.5 <= time.monotonic() - started < 8
    await until(lambda: replicas_of(k8s_emulator, "huge") == 0, 5)
