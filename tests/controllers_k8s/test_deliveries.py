"""GitHub webhook deliveries on Kubernetes are deduplicated across replicas and restarts:
the same delivery sent to two replicas at once builds once, a redelivery after a restart
builds nothing, a new delivery builds, and with the API down or hung a delivery is still
accepted (answered in time, checked in memory) rather than lost."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
import structlog

from tests.controllers_k8s.layout import LEASE_NS, pushing
from tests.k8s_emulator import Emulator
from tests.k8s_emulator import resources as r
from wakeproxy.controllers.cluster import KubernetesControllers
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.client import connect
from wakeproxy.platforms.kubernetes.delivery_log import (
    ANNOTATION,
    LeaseDeliveryLog,
    key_of,
    parse_records,
)
from wakeproxy.settings import KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

SECRET = b"deliveries-secret-for-tests"
LOG = "wakeproxy-deliveries"


def delivery(delivery_id: str, *, number: int = 7, action: str = "opened",
             sha: str = "a" * 40) -> tuple[dict[str, str], bytes]:
    body = json.dumps({"action": action, "number": number,
                       "pull_request": {"number": number, "head": {
                           "sha": sha, "repo": {"full_name": "acme/shop"}}},
                       "repository": {"full_name": "acme/shop"}}).encode()
    return {"X-GitHub-Event": "pull_request", "X-GitHub-Delivery": delivery_id,
            "X-Hub-Signature-256":
                "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()}, body


def build_jobs(emulator: Emulator, app: str) -> list[str]:
    """The build Jobs of `app` in the cluster (what `kubectl get jobs -l ...` lists)."""
    return [o["metadata"]["name"] for o in emulator.store.items(r.JOBS)
            if o["metadata"].get("labels", {}).get("wakeproxy.io/app-name") == app]


def shared_ids(emulator: Emulator, *, bodies: bool = False) -> list[str]:
    """The delivery ids in the shared log (with `bodies`, only the bodies' digests)."""
    lease = emulator.store.find(r.LEASES, LEASE_NS, LOG)
    return [k for k in parse_records(lease) if k.startswith("body-") == bodies]


class Cluster:
    """Replicas of the controllers, each with its own API client, as separate pods have."""

    def __init__(self, emulator: Emulator, stack: AsyncExitStack) -> None:
        self.emulator = emulator
        self._stack = stack

    async def replica(self, *, request_timeout: float = 5.0) -> KubernetesControllers:
        client = await connect(kubeconfig=str(self.emulator.wakeproxy_kubeconfig), incluster=None,
                               pool_size=8)
        self._stack.push_async_callback(client.close)
        api = Api(client, timeout=request_timeout, stats=PlatformStats(leader=False))
        shop = LocalApp(policy=AppPolicy(name="shop", hosts=("shop.localhost",)), command="",
                        repo="https://git.example/shop.git", github_repo="acme/shop")
        controllers = KubernetesControllers(
            apps=[shop], review=ReviewSettings(domain="review.localhost", webhook_secret=SECRET),
            settings=KubernetesBuilds(builder_command=pushing("echo built")),
            api=lambda: api, lease_namespace=LEASE_NS, lease_name="wakeproxy")
        await controllers.start()
        self._stack.push_async_callback(controllers.close)
        return controllers


@pytest.fixture
async def cluster(k8s_emulator: Emulator) -> AsyncIterator[Cluster]:
    async with AsyncExitStack() as stack:
        yield Cluster(k8s_emulator, stack)


async def settled(*replicas: KubernetesControllers) -> None:
    """Every accepted event handled: built (and deployed) or failed."""
    for replica in replicas:
        assert replica.reviews is not None
        await replica.reviews.idle()


async def test_one_delivery_sent_to_two_replicas_at_once_builds_once(
    cluster: Cluster, k8s_emulator: Emulator,
) -> None:
    a, b = await cluster.replica(), await cluster.replica()
    # Both replicas read before either writes (the first write is held back): first with
    # no Lease yet (both create it), then with the Lease there (both update the version
    # they read). One write wins each time; the other replica reads again.
    for number, delivery_id, verb in ((7, "72d3162e-cc78-11e3-81ab-4c9367dc0958", "create"),
                                      (8, "8a1f0c3e-cc78-11e3-81ab-4c9367dc0958", "update")):
        k8s_emulator.faults.stall(0.3, times=1, verb=verb, resource="leases")
        headers, body = delivery(delivery_id, number=number)
        answers = await asyncio.gather(a.webhook(headers, body), b.webhook(headers, body))
        assert sorted(answers, key=str) == sorted([
            {"delivery": delivery_id, "action": "opened", "review_apps": [f"pr-{number}-shop"]},
            {"delivery": delivery_id, "ignored": "already received"}], key=str)
    await settled(a, b)
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 1
    assert len(build_jobs(k8s_emulator, "pr-8-shop")) == 1
    conflicts = [q for q in k8s_emulator.recorder.matching(resource="leases") if q.status == 409]
    assert [q.verb for q in conflicts] == ["create", "update"]  # the races did happen
    assert shared_ids(k8s_emulator) == ["72d3162e-cc78-11e3-81ab-4c9367dc0958",
                                        "8a1f0c3e-cc78-11e3-81ab-4c9367dc0958"]


async def test_a_redelivery_after_a_restart_builds_nothing_and_a_new_delivery_builds(
    cluster: Cluster, k8s_emulator: Emulator,
) -> None:
    first = await cluster.replica()
    headers, body = delivery("d-before-restart")
    assert (await first.webhook(headers, body))["review_apps"] == ["pr-7-shop"]
    await settled(first)
    await first.close()  # the pod is replaced: its memory is gone

    again = await cluster.replica()
    assert await again.webhook(headers, body) == {"delivery": "d-before-restart",
                                                  "ignored": "already received"}
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 1
    headers, body = delivery("d-after-restart", action="synchronize", sha="b" * 40)
    assert (await again.webhook(headers, body))["review_apps"] == ["pr-7-shop"]
    await settled(again)
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 2
    # Deliveries that start no work cost no API call and are not shared.
    before = len(k8s_emulator.recorder.matching(resource="leases"))
    headers, body = delivery("d-edited", action="edited")
    assert (await again.webhook(headers, body))["ignored"] == "action edited not handled"
    assert len(k8s_emulator.recorder.matching(resource="leases")) == before
    assert shared_ids(k8s_emulator) == ["d-before-restart", "d-after-restart"]


async def test_with_the_api_down_a_delivery_is_accepted_and_checked_in_memory(
    cluster: Cluster, k8s_emulator: Emulator,
) -> None:
    replica = await cluster.replica()
    await k8s_emulator.down()
    try:
        headers, body = delivery("d-api-down")
        with structlog.testing.capture_logs() as logs:
            started = time.monotonic()
            answer = await replica.webhook(headers, body)
            took = time.monotonic() - started
        assert answer["review_apps"] == ["pr-7-shop"]  # accepted, not lost
        assert took < 5.0, took
        [warning] = [e for e in logs if "shared delivery log" in e["event"]]
        assert warning["log_level"] == "warning" and warning["delivery"] == "d-api-down"
        # This replica still remembers it: a redelivery here is a duplicate.
        assert (await replica.webhook(headers, body))["ignored"] == "already received"
    finally:
        await k8s_emulator.up()
    await settled(replica)


async def test_a_hung_lease_api_delays_a_delivery_by_at_most_the_request_timeout(
    cluster: Cluster, k8s_emulator: Emulator,
) -> None:
    replica = await cluster.replica(request_timeout=0.5)
    stall = k8s_emulator.faults.stall(3.0, times=None, resource="leases")
    headers, body = delivery("d-api-hung")
    started = time.monotonic()
    answer = await replica.webhook(headers, body)
    assert time.monotonic() - started < 1.5
    assert answer["review_apps"] == ["pr-7-shop"]
    k8s_emulator.faults.remove(stall)
    await settled(replica)
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 1  # built all the same


async def test_the_shared_log_keeps_at_most_its_bound_oldest_dropped_first(
    k8s_emulator: Emulator, api: Api,
) -> None:
    clock = FakeClock()
    log = LeaseDeliveryLog(api=lambda: api, namespace=LEASE_NS, lease_name="wakeproxy",
                           clock=clock, limit=3, window=3600.0)
    for delivery_id in ("d-1", "d-2", "d-3", "d-4"):
        assert await log.first_time(delivery_id) is True
        clock.advance(60)
    assert shared_ids(k8s_emulator) == ["d-2", "d-3", "d-4"]
    assert await log.first_time("d-1") is True  # forgotten: the oldest went first
    assert await log.first_time("d-4") is False
    clock.advance(3600 - 60)
    assert await log.first_time("d-2") is True  # older than the window
    assert await log.first_time("d-1") is False
    # An id that JSON would escape, or a long one, is kept as its digest (bounded size).
    odd = 'x"' * 100
    assert await log.first_time(odd) is True and await log.first_time(odd) is False
    lease = k8s_emulator.store.get(r.LEASES, LEASE_NS, LOG)
    assert key_of(odd) in json.loads(lease["metadata"]["annotations"][ANNOTATION])
    assert len(key_of(odd)) == 64


async def test_a_signed_body_replayed_under_a_new_delivery_id_is_a_duplicate_on_any_replica(
    cluster: Cluster, k8s_emulator: Emulator,
) -> None:
    """The signature covers the body, not X-GitHub-Delivery: a captured `closed` resent
    under a fresh id must not delete the review app of a reopened pull request."""
    a = await cluster.replica()
    opened = delivery("d-opened")
    closed = delivery("d-closed", action="closed")
    reopened = delivery("d-reopened", action="reopened")
    for headers, body in (opened, closed, reopened):
        assert "review_apps" in await a.webhook(headers, body)
        await settled(a)
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 1  # the reopened one's
    b = await cluster.replica()  # another replica, which never saw the close
    for replica, replay_id in ((b, "d-replayed-1"), (a, "d-replayed-2")):
        headers, body = closed
        answer = await replica.webhook({**headers, "X-GitHub-Delivery": replay_id}, body)
        assert answer == {"delivery": replay_id, "ignored": "already received"}
    await settled(a, b)
    assert len(build_jobs(k8s_emulator, "pr-7-shop")) == 1  # not deleted
    assert len(shared_ids(k8s_emulator, bodies=True)) == 3
