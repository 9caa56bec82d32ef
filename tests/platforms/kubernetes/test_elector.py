"""Leader election on a Lease: one leader at a time, failover when it dies, fast handover."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.resources import LEASES
from tests.platforms.kubernetes.support import LEASE_NS, api_client, until
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.elector import LeaseElector, micro_time

MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class Candidate:
    def __init__(self, elector: LeaseElector, stats: PlatformStats) -> None:
        self.elector = elector
        self.stats = stats
        self.task: asyncio.Task[None] = asyncio.create_task(elector.run())

    def kill(self) -> None:
        """Die without a word, as a SIGKILLed pod does: no release."""
        self.task.cancel()


@pytest.fixture
async def candidate(
    k8s_emulator: Emulator,
) -> AsyncIterator[Callable[[str], Coroutine[Any, Any, Candidate]]]:
    made: list[Candidate] = []
    clients = []

    async def make(identity: str) -> Candidate:
        client = await api_client(k8s_emulator)
        clients.append(client)
        stats = PlatformStats(leader=False)
        elector = LeaseElector(api=Api(client, timeout=2.0, stats=stats), namespace=LEASE_NS,
                               name="wakeproxy", identity=identity, duration=1.0,
                               clock=SystemClock(), stats=stats)
        c = Candidate(elector, stats)
        made.append(c)
        return c

    yield make
    for c in made:
        c.kill()
        await asyncio.gather(c.task, return_exceptions=True)
    for client in clients:
        await client.close()


def leaders(candidates: list[Candidate]) -> list[str]:
    return [c.elector.identity for c in candidates if c.elector.leading]


def test_micro_time_has_exactly_six_fraction_digits() -> None:
    assert micro_time(1_700_000_000.0) == "2023-11-14T22:13:20.000000Z"
    assert MICRO.match(micro_time(time.time()))


async def test_one_leader_and_failover_when_it_dies(
    k8s_emulator: Emulator, candidate: Callable[[str], Coroutine[Any, Any, Candidate]],
) -> None:
    group = [await candidate("wp-a"), await candidate("wp-b"), await candidate("wp-c")]
    first = await until(lambda: leaders(group), 5)
    assert len(first) == 1
    lease = k8s_emulator.store.get(LEASES, LEASE_NS, "wakeproxy")
    assert lease["spec"]["holderIdentity"] == first[0]
    assert MICRO.match(lease["spec"]["renewTime"]) and MICRO.match(lease["spec"]["acquireTime"])
    leader = next(c for c in group if c.elector.identity == first[0])
    assert leader.stats.leader is True
    # Watch for overlap during the whole failover.
    overlaps: list[list[str]] = []

    async def watch_overlap() -> None:
        while True:
            if len(leaders(group)) > 1:
                overlaps.append(leaders(group))
            await asyncio.sleep(0.01)

    watcher = asyncio.create_task(watch_overlap())
    leader.kill()
    killed_at = time.monotonic()
    survivors = [c for c in group if c is not leader]
    second = await until(lambda: leaders(survivors), 5)
    took = time.monotonic() - killed_at
    watcher.cancel()
    assert len(second) == 1 and second[0] != first[0]
    assert took < 3.0  # about one lease duration plus a retry period
    assert overlaps == []
    lease = k8s_emulator.store.get(LEASES, LEASE_NS, "wakeproxy")
    assert lease["spec"]["holderIdentity"] == second[0]
    assert lease["spec"]["leaseTransitions"] == 1


async def test_a_released_lease_is_taken_over_at_once(
    candidate: Callable[[str], Coroutine[Any, Any, Candidate]],
) -> None:
    a = await candidate("wp-a")
    await until(lambda: a.elector.leading, 5)
    b = await candidate("wp-b")
    await asyncio.sleep(0.3)
    assert not b.elector.leading
    a.kill()
    await asyncio.gather(a.task, return_exceptions=True)
    await a.elector.release()
    released_at = time.monotonic()
    await until(lambda: b.elector.leading, 5)
    assert time.monotonic() - released_at < 0.8  # no waiting out the lease duration


async def test_a_leader_cut_off_from_the_api_steps_down(
    k8s_emulator: Emulator, candidate: Callable[[str], Coroutine[Any, Any, Candidate]],
) -> None:
    a = await candidate("wp-a")
    await until(lambda: a.elector.leading, 5)
    await k8s_emulator.down()
    await until(lambda: not a.elector.leading, 3)
    assert a.stats.leader is False
    await k8s_emulator.up()
    await until(lambda: a.elector.leading, 5)
