"""The headroom end to end: a real `wakeproxy serve` keeps placeholder pods on a full
cluster, and a woken app's pod is placed at once by evicting one of them instead of
waiting for a node; without the headroom it waits, and the wait is counted."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, cli, get, metrics, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.meta import dig
from tests.k8s_emulator.nodes import NodeSpec
from tests.k8s_emulator.resources import PODS

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]
APP = {"cpu": "1", "memory": "256Mi"}
READY = 'wakeproxy_headroom_pods{state="ready"}'
WAITED = "wakeproxy_wakes_waited_for_scheduling_total"


@pytest.fixture
async def cluster(cluster_target: str, make_k8s_emulator: EmulatorFactory,
                  ) -> AsyncIterator[Cluster]:
    """One node with room for three app pods (cpu 3): the cluster these tests fill."""
    emulator = await make_k8s_emulator(
        bookmark_interval=0.5, nodes=[NodeSpec("node-1", cpu="3", memory="4Gi")])
    c = await Cluster(emulator.kubeconfig, "default", emulator).open()
    try:
        yield c
    finally:
        await c.close()


def pods(emulator: Emulator, selector: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
    return [p for p in emulator.store.items(PODS)
            if selector(p) and not dig(p, "metadata", "deletionTimestamp")]


def placeholders(emulator: Emulator) -> list[dict[str, Any]]:
    return pods(emulator, lambda p: dig(p, "metadata", "labels", "wakeproxy.io/headroom")
                == "true")


def unscheduled(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [p for p in found if not dig(p, "spec", "nodeName")]


async def metric(wp: Wakeproxy, name: str) -> float:
    return (await metrics(wp)).get(name, -1.0)


async def test_a_wake_on_a_full_cluster_evicts_a_placeholder_and_is_served_at_once(
    cluster: Cluster, replicas: Replicas,
) -> None:
    emulator = cluster.emulator
    assert emulator is not None
    await cluster.create_app("busy", hosts="busy.example.com", replicas=1, requests=APP)
    for name in ("shop", "blog", "wiki"):
        await cluster.create_app(name, hosts=f"{name}.example.com", requests=APP)
    wp = await replicas()

    # Room for the two largest sleeping apps: two placeholders, which fill the node.
    await until(lambda: _equals(metric(wp, READY), 2), 20)
    assert len(placeholders(emulator)) == 2
    code, out = await cli("status", "--admin", wp.admin)
    assert code == 0, out
    assert out.splitlines()[-1] == (
        "headroom: 2 placeholder pods (2 ready) holding 2 CPU, 512Mi memory for wakes")

    async with aiohttp.ClientSession() as session:
        status, body, _ = await get(session, wp, "shop.example.com")
    assert (status, "hello from shop" in body) == (200, True)
    # Placed by evicting a placeholder: it never waited for a node.
    [shop] = pods(emulator, lambda p: dig(p, "metadata", "labels", "app") == "shop")
    assert dig(shop, "spec", "nodeName") == "node-1"
    assert await metric(wp, WAITED) == 0

    # The evicted placeholder is back, Pending: no room until a node is added. Two are
    # still wanted (blog and wiki sleep), one is held.
    await until(lambda: len(unscheduled(placeholders(emulator))) == 1, 10)
    m = await metrics(wp)
    assert (m['wakeproxy_headroom_pods{state="desired"}'], m[READY]) == (2, 1)
    assert m['wakeproxy_headroom_cpu_cores{state="ready"}'] == 1

    emulator.add_node("node-2", cpu="2", memory="4Gi")  # the cluster autoscaler's answer
    await until(lambda: _equals(metric(wp, READY), 2), 10)
    assert unscheduled(placeholders(emulator)) == []
    assert await metric(wp, WAITED) == 0


async def test_without_headroom_a_wake_on_a_full_cluster_waits_for_a_node_and_is_counted(
    cluster: Cluster, replicas: Replicas,
) -> None:
    emulator = cluster.emulator
    assert emulator is not None
    await cluster.create_app("busy", hosts="busy.example.com", replicas=1,
                             requests={"cpu": "3", "memory": "256Mi"})
    await cluster.create_app("shop", hosts="shop.example.com", requests=APP)
    wp = await replicas(kubernetes={"headroom": {"enabled": False}})
    assert await metric(wp, 'wakeproxy_headroom_pods{state="desired"}') == 0

    async with aiohttp.ClientSession() as session:
        request = asyncio.create_task(get(session, wp, "shop.example.com"))
        # Held while its pod waits for a node: counted once it has waited 2 s.
        await until(lambda: _equals(metric(wp, WAITED), 1), 10)
        waiting = pods(emulator, lambda p: dig(p, "metadata", "labels", "app") == "shop")
        assert len(unscheduled(waiting)) == 1
        assert not request.done()
        emulator.add_node("node-2", cpu="2", memory="4Gi")
        status, _, _ = await request
    assert status == 200
    assert await metric(wp, WAITED) == 1
    assert placeholders(emulator) == []


async def _equals(value: Coroutine[Any, Any, float], wanted: float) -> bool:
    return await value == wanted
