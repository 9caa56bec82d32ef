"""Never-sleep apps on Kubernetes through real `wakeproxy serve` replicas: a Deployment
annotated `idle-after: never` at zero replicas is scaled up by the leader with no request,
and so is a sleeping app once the annotation is added; `wakeproxy sleep` on the other
replica keeps it at zero (the hold is on the Deployment, so the leader honours it) until
a request wakes it, and the wake removes the hold."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, app_state, cli, get, metrics, until

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]
HELD = "wakeproxy.io/held-asleep"


async def _is(state: Coroutine[Any, Any, int | str], wanted: int | str) -> bool:
    return await state == wanted


async def leading(wp: Wakeproxy) -> bool:
    return (await metrics(wp)).get("wakeproxy_leader") == 1


async def notes(cluster: Cluster, name: str) -> dict[str, str]:
    dep = await cluster.apps.read_namespaced_deployment(name, cluster.namespace)
    return dict(dep.metadata.annotations or {})


@pytest.mark.k8s_e2e
async def test_a_never_sleep_app_is_scaled_up_unasked_and_an_operators_sleep_holds(
    cluster: Cluster, replicas: Replicas,
) -> None:
    await cluster.create_app("prod", hosts="prod.example.com", idle_after="never")
    await cluster.create_app("later", hosts="later.example.com", idle_after="5m")
    a = await replicas("wp-a")
    await until(lambda: leading(a), 10)
    b = await replicas("wp-b")
    prod = cluster.app_name("prod")
    await until(lambda: _is(cluster.replicas("prod"), 1), 15)  # no request sent
    await until(lambda: _is(app_state(a, prod), "awake"), 15)
    assert await cluster.replicas("later") == 0
    await cluster.annotate("later", idle_after="never")  # made a production app: woken
    await until(lambda: _is(cluster.replicas("later"), 1), 15)

    # The operator asks the follower; the leader sees the hold on the Deployment.
    code, out = await cli("sleep", prod, "--admin", b.admin)
    assert code == 0, out
    assert await cluster.replicas("prod") == 0
    assert (await notes(cluster, "prod"))[HELD] == "true"
    await asyncio.sleep(2)  # the leader's keeper looks every 100 ms
    assert await cluster.replicas("prod") == 0
    code, out = await cli("status", "--admin", a.admin)
    assert f"{prod}: never sleeps, but put to sleep with wakeproxy sleep" in out, out

    async with aiohttp.ClientSession() as session:
        assert (await get(session, a, "prod.example.com"))[0] == 200  # its next request
    assert await cluster.replicas("prod") == 1
    assert HELD not in await notes(cluster, "prod")  # the wake ended the hold
    await until(lambda: _is(app_state(b, prod), "awake"), 15)
