"""The Kubernetes platform under the real lifecycle: discovery, wakes, sleeps, outages."""

from __future__ import annotations

import asyncio
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


async def test_a_wake_does_not_wait_for_the_control_plane_to_mark_the_pod_ready(
    k8s_emulator: Emulator, make_world: MakeWorld, tmp_path: Path,
) -> None:
    body = app_deployment("web", hosts="web.example.com")
    container = body["spec"]["template"]["spec"]["containers"][0]
    # The kubelet's readiness probe fails until a file exists: the slice says "not ready"
    # although the pod already answers.
    container["readinessProbe"] = {"httpGet": {"path": "/ready", "port": "http"}}
    container["workingDir"] = str(tmp_path)
    k8s_emulator.create(body)
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.web")
    state = world.state("default.web")
    assert k8s_emulator.ready_ports("web") == []
    # It answers; only the kubelet's probe (/ready) still fails.
    assert await get(state.endpoints[0]) == 200
    assert await get(state.endpoints[0], "/ready") == 404
    (tmp_path / "ready").write_text("ok")
    await until(lambda: k8s_emulator.ready_ports("web"), 5)
    await asyncio.sleep(0.2)
    assert state.phase is Phase.AWAKE and len(state.endpoints) == 1


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


async def test_a_wake_that_times_out_scales_back_down_what_it_scaled_up(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("mute", hosts="mute.example.com", wake_timeout="800ms",
                                       command=["/bin/sh", "-c", "exec sleep 30"]))
    world = await make_world(k8s_emulator)
    with pytest.raises(WakeTimedOut):
        await world.lifecycle.wake("default.mute")
    assert replicas_of(k8s_emulator, "mute") == 0
    assert world.stats.scale_calls == {"ok": 2}  # up, then back down
    await until(lambda: not k8s_emulator.pods(app="mute"), 10)


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
