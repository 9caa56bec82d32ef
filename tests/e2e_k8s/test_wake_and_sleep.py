"""Waking and sleeping Deployments through a real `wakeproxy serve` on Kubernetes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import Cluster, app_state, get, metrics, until
from tests.k8s_emulator import Emulator
from tests.k8s_emulator.resources import NAMESPACES

Replicas = Callable[..., Coroutine[Any, Any, Wakeproxy]]


@pytest.mark.k8s_e2e
async def test_500_requests_during_a_wake_make_one_scale_call_and_are_all_served(
    cluster: Cluster, replicas: Replicas,
) -> None:
    await cluster.create_app("web", hosts="web.example.com")
    wp = await replicas()
    assert await app_state(wp, cluster.app_name("web")) == "asleep"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        answers = await asyncio.gather(*(get(session, wp, "web.example.com") for _ in range(500)))
        took = time.monotonic() - started
    assert sorted({status for status, _, _ in answers}) == [200], answers[:3]
    if cluster.emulator is not None:
        assert all("hello from web" in body for _, body, _ in answers)
        scale_writes = cluster.emulator.recorder.matching(verb="update", subresource="scale")
        assert len(scale_writes) == 1
        assert took < 15
    m = await metrics(wp)
    assert m['wakeproxy_scale_calls_total{result="ok"}'] == 1
    assert await cluster.replicas("web") == 1


@pytest.mark.k8s_e2e
async def test_an_idle_app_is_scaled_to_zero(cluster: Cluster, replicas: Replicas) -> None:
    await cluster.create_app("web", hosts="web.example.com", idle_after="1s")
    wp = await replicas()
    async with aiohttp.ClientSession() as session:
        status, _, _ = await get(session, wp, "web.example.com")
    assert status == 200
    assert await cluster.replicas("web") == 1
    await until(lambda: app_state(wp, cluster.app_name("web")), 5)
    await until(lambda: _is(app_state(wp, cluster.app_name("web")), "asleep"), 15)
    assert await cluster.replicas("web") == 0
    await until(lambda: _zero(cluster.running_pods("web")), 30)


@pytest.mark.k8s_e2e
async def test_apps_are_added_reannotated_and_deleted_live(
    cluster: Cluster, replicas: Replicas,
) -> None:
    wp = await replicas()
    async with aiohttp.ClientSession() as session:
        assert (await get(session, wp, "shop.example.com"))[0] == 404
        await cluster.create_app("shop", hosts="shop.example.com")
        await until(lambda: _is(app_state(wp, cluster.app_name("shop")), "asleep"), 10)
        assert (await get(session, wp, "shop.example.com"))[0] == 200
        await cluster.annotate("shop", hosts="store.example.com")
        await until(lambda: _status(session, wp, "shop.example.com", 404), 10)
        assert (await get(session, wp, "store.example.com"))[0] == 200
        label = f'app="{cluster.app_name("shop")}"'
        assert [k for k in await metrics(wp) if label in k]
        await cluster.delete_app("shop")
        await until(lambda: _status(session, wp, "store.example.com", 404), 10)
    assert await app_state(wp, cluster.app_name("shop")) == "absent"
    # Its series left /metrics with it (review apps come and go: they must not pile up).
    assert [k for k in await metrics(wp) if label in k] == []


async def _is(state: Coroutine[Any, Any, str], wanted: str) -> bool:
    return await state == wanted


async def _zero(count: Coroutine[Any, Any, int]) -> bool:
    return await count == 0


async def _status(session: aiohttp.ClientSession, wp: Wakeproxy, host: str, wanted: int) -> bool:
    return (await get(session, wp, host))[0] == wanted


async def test_a_slow_image_pull_answers_504_then_the_next_request_joins_it(
    cluster: Cluster, emulator: Emulator, replicas: Replicas,
) -> None:
    # A large image on a real node: the pull outlasts wake_timeout.
    emulator.kubelet.pulls.delay = 3.0
    await cluster.create_app("big", hosts="big.example.com", wake_timeout="1s")
    wp = await replicas()
    async with aiohttp.ClientSession() as session:
        status, body, headers = await get(session, wp, "big.example.com")
        assert status == 504 and "Retry-After" in headers, (status, body)
        assert await cluster.replicas("big") == 1  # the scale-up carries on
        # Clients retrying join it: served once the pull is done, never started over. Each
        # retry is held up to wake_timeout (1 s); after the 3 s pull the app's process
        # still has to start and pass its probe, which a busy machine can stretch.
        for _ in range(10):
            status, body, _ = await get(session, wp, "big.example.com")
            if status == 200:
                break
    assert status == 200 and "hello from big" in body
    scale_ups = [r for r in emulator.recorder.requests
                 if r.subresource == "scale" and r.verb == "update" and r.name == "big"]
    assert len(scale_ups) == 1  # joined, not started over
    assert len(emulator.pods(app="big")) == 1


async def test_pods_refused_by_pod_security_answer_502_with_the_reason_in_seconds(
    cluster: Cluster, emulator: Emulator, replicas: Replicas,
) -> None:
    # A user's own Deployment, annotated for wakeproxy, in a namespace enforcing
    # `restricted`: its template has no securityContext, so every pod is refused.
    emulator.store.mutate(NAMESPACES, None, "default", lambda ns: ns["metadata"].setdefault(
        "labels", {}).update({"pod-security.kubernetes.io/enforce": "restricted"}))
    await cluster.create_app("plain", hosts="plain.example.com", wake_timeout="20s")
    wp = await replicas(kubernetes={"refused_grace": "1s"})
    async with aiohttp.ClientSession() as session:
        started = time.monotonic()
        status, body, _ = await get(session, wp, "plain.example.com")
        took = time.monotonic() - started
    assert status == 502, (status, body)
    assert "refused at creation" in body and 'violates PodSecurity "restricted:latest"' in body
    assert 1.0 <= took < 6, took  # the grace, not the 20 s wake timeout
    await until(lambda: _zero(cluster.replicas("plain")), 5)  # scaled back
    m = await metrics(wp)
    assert m['wakeproxy_scale_ups_given_up_total{reason="refused"}'] == 1
