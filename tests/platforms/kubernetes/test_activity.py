"""Replicas share activity in batches, so the leader sweeps on cluster-wide use."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from typing import Any

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.resources import LEASES
from tests.platforms.kubernetes.support import (
    LEASE_NS,
    World,
    app_deployment,
    replicas_of,
    until,
)
from wakeproxy.model.board import Phase
from wakeproxy.platforms.kubernetes.activity import ACTIVITY_ANNOTATION, record_name

MakeWorld = Callable[..., Coroutine[Any, Any, World]]


def lease_updates(emulator: Emulator, name: str) -> int:
    return len([r for r in emulator.recorder.matching(verb="update", resource="leases")
                if r.name == name])


async def test_activity_on_a_follower_keeps_an_app_awake_and_costs_one_write_per_interval(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", idle_after="600ms"))
    leader = await make_world(k8s_emulator, identity="wp-a", sweep=True)
    await until(leader.platform.leader, 5)
    follower = await make_world(k8s_emulator, identity="wp-b", sweep=True)
    state = leader.state("default.web")
    # Traffic on the follower only: many requests, one long one still open; the follower
    # wakes the app, and the leader learns of both within an interval or two.
    started = time.monotonic()
    follower.ledger.begin("default.web")
    for _ in range(200):
        follower.ledger.begin("default.web")
        follower.ledger.end("default.web")

    def leader_sees_it_open() -> bool:
        merged = leader.peers.merged("default.web", time.monotonic())
        return merged is not None and merged.in_flight == 1

    await until(leader_sees_it_open, 5)
    await follower.lifecycle.wake("default.web")
    await until(lambda: state.phase is Phase.AWAKE, 5)
    await asyncio.sleep(1.5)  # well past idle_after
    assert state.phase is Phase.AWAKE and replicas_of(k8s_emulator, "web") == 1
    assert not follower.platform.leader()
    writes = lease_updates(k8s_emulator, record_name("wakeproxy", "wp-b"))
    intervals = (time.monotonic() - started) / 0.2
    assert writes <= intervals + 3  # one per interval, not one per request
    follower.ledger.end("default.web")
    # Idle everywhere now: the leader sweeps it once idle_after has passed.
    await until(lambda: state.phase is Phase.ASLEEP, 5)
    assert time.monotonic() - started >= 1.5 + 0.6 - 0.3
    assert replicas_of(k8s_emulator, "web") == 0
    await until(lambda: follower.state("default.web").phase is Phase.ASLEEP, 5)


async def test_a_dead_peers_open_requests_stop_counting(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", idle_after="300ms"))
    leader = await make_world(k8s_emulator, identity="wp-a", sweep=True, stale_after=1.5)
    await until(leader.platform.leader, 5)
    peer = await make_world(k8s_emulator, identity="wp-b")
    peer.ledger.begin("default.web")  # a request left open on a replica that then dies

    def seen_open() -> bool:
        merged = leader.peers.merged("default.web", time.monotonic())
        return merged is not None and merged.in_flight == 1

    await until(seen_open, 5)
    await leader.lifecycle.wake("default.web")
    for task in peer.platform._tasks:
        task.cancel()  # gone without cleaning up, like a killed pod
    killed = time.monotonic()
    state = leader.state("default.web")
    await asyncio.sleep(0.6)
    assert state.phase is Phase.AWAKE  # well past idle_after: the open request counts
    # Its record goes stale (unchanged for 1.5 s), then the app is swept.
    await until(lambda: state.phase is Phase.ASLEEP, 5)
    assert time.monotonic() - killed >= 0.6
    record = k8s_emulator.store.find(LEASES, LEASE_NS, "wakeproxy-activity-wp-b")
    assert record is not None  # still there: removed only once gone for a long time


async def test_a_peer_whose_clock_is_off_by_an_hour_is_read_by_the_ages_it_reports(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com"))
    leader = await make_world(k8s_emulator, identity="wp-a")
    ahead = time.time() + 3600.0  # the peer's wall clock, an hour fast
    k8s_emulator.create({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": record_name("wakeproxy", "wp-skewed"), "namespace": LEASE_NS,
                     "labels": {"wakeproxy.io/activity": "true"},
                     "annotations": {ACTIVITY_ANNOTATION: json.dumps(
                         {"apps": {"default.web": [ahead - 2.0, 0]}, "at": ahead})}},
        "spec": {"holderIdentity": "wp-skewed"},
    })

    def seen() -> float | None:
        merged = leader.peers.merged("default.web", time.monotonic())
        return None if merged is None else merged.last_access

    await until(seen, 5)
    last = seen()
    assert last is not None
    # Used two seconds before the peer wrote: not an hour in the future (which would
    # keep the app awake for an hour) nor an hour ago (which would let it be swept).
    assert 1.5 <= time.monotonic() - last <= 3.0
