"""coordination.k8s.io/v1 Leases: MicroTime handling and the client's own leader election."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.leaderelection import electionconfig, leaderelection
from kubernetes_asyncio.leaderelection.resourcelock.leaselock import LeaseLock

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.resources import LEASES

from .helpers import expect_status


def lease(holder: str, renewed: datetime | str) -> client.V1Lease:
    # A string goes on the wire as is: how a badly formatted time reaches the server.
    when: Any = renewed
    return client.V1Lease(
        metadata=client.V1ObjectMeta(name="sweeper", namespace="default"),
        spec=client.V1LeaseSpec(holder_identity=holder, lease_duration_seconds=15,
                                acquire_time=when, renew_time=when),
    )


async def test_create_and_renew_with_micro_time(k8s_api: ApiClient) -> None:
    leases: Any = client.CoordinationV1Api(k8s_api)
    start = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    made = await leases.create_namespaced_lease("default", lease("replica-a", start))
    assert made.spec.renew_time == start
    made.spec.renew_time = start + timedelta(seconds=5, microseconds=1)
    renewed = await leases.replace_namespaced_lease("sweeper", "default", made)
    assert renewed.spec.renew_time == start + timedelta(seconds=5, microseconds=1)
    assert renewed.spec.acquire_time == start
    # A competing replica holding an old copy loses: its write carries a stale version.
    made.spec.holder_identity = "replica-b"
    with pytest.raises(ApiException) as exc:
        await leases.replace_namespaced_lease("sweeper", "default", made)
    expect_status(exc, 409, "Conflict")


async def test_micro_time_must_have_six_fraction_digits(k8s_api: ApiClient) -> None:
    leases: Any = client.CoordinationV1Api(k8s_api)
    whole_second = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)  # isoformat() drops the fraction
    with pytest.raises(ApiException) as exc:
        await leases.create_namespaced_lease("default", lease("replica-a", whole_second))
    expect_status(exc, 400, "BadRequest")
    with pytest.raises(ApiException) as exc:
        await leases.create_namespaced_lease("default",
                                             lease("replica-a", "2030-01-02T03:04:05.1Z"))
    expect_status(exc, 400, "BadRequest")


async def test_wire_form_is_utc_with_six_digits(k8s_emulator: Emulator, k8s_api: ApiClient) -> None:
    leases: Any = client.CoordinationV1Api(k8s_api)
    offset = datetime(2030, 1, 2, 5, 4, 5, 120000, tzinfo=UTC).astimezone(
        timezone(timedelta(hours=2)))
    await leases.create_namespaced_lease("default", lease("replica-a", offset))
    stored = k8s_emulator.store.get(LEASES, "default", "sweeper")
    assert stored["spec"]["renewTime"] == "2030-01-02T05:04:05.120000Z"


async def test_the_client_leader_election_acquires_the_lease(
    k8s_emulator: Emulator, k8s_api: ApiClient
) -> None:
    became_leader = asyncio.Event()

    async def on_started() -> None:
        became_leader.set()

    async def on_stopped() -> None:
        pass

    lock = LeaseLock("sweeper", "default", "replica-a", k8s_api)
    config = electionconfig.Config(lock, lease_duration=3, renew_deadline=2, retry_period=1,
                                   onstarted_leading=on_started, onstopped_leading=on_stopped)
    election = asyncio.create_task(leaderelection.LeaderElection(config).run())
    try:
        async with asyncio.timeout(10):
            await became_leader.wait()
    finally:
        election.cancel()
        await asyncio.gather(election, return_exceptions=True)
    held = await client.CoordinationV1Api(k8s_api).read_namespaced_lease("sweeper", "default")
    assert held.spec.holder_identity == "replica-a"
