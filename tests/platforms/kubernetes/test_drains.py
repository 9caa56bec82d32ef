"""Two-phase sleep: the leader scales an app down only once every peer has let go of it.

A request a follower took after its last activity record must never reach a pod that the
leader is scaling away. So the leader proposes the sleep in its record; each peer takes
the app out of rotation (new requests are held) and answers "done" once nothing of the
app is open there, or "wanted" if a request there wants it; the leader scales only on
"done" from everyone. These tests drive two replicas on the emulator and watch what a
user of each would see: the replica count, each replica's phase, and the records.
"""

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
    scale_writes,
    until,
)
from wakeproxy.model.board import Phase
from wakeproxy.platforms.kubernetes.activity import ACTIVITY_ANNOTATION, AGREE_WITHIN, record_name

MakeWorld = Callable[..., Coroutine[Any, Any, World]]
APP = "default.web"


async def two_replicas(
    emulator: Emulator, make_world: MakeWorld, idle_after: str = "100ms",
    stale_after: float | None = None,
) -> tuple[World, World]:
    """A leader and a follower, the app awake on both and each seeing the other fresh."""
    emulator.create(app_deployment("web", hosts="web.example.com", idle_after=idle_after))
    leader = await make_world(emulator, identity="wp-a", stale_after=stale_after)
    await until(leader.platform.leader, 5)
    follower = await make_world(emulator, identity="wp-b", stale_after=stale_after)
    await leader.lifecycle.wake(APP)
    await until(lambda: follower.state(APP).phase is Phase.AWAKE, 5)
    now = time.monotonic
    await until(lambda: leader.peers.fresh_peers(now()) and follower.peers.fresh_peers(now()), 5)
    return leader, follower


def record_of(emulator: Emulator, identity: str) -> dict[str, Any]:
    lease = emulator.store.find(LEASES, LEASE_NS, record_name("wakeproxy", identity))
    assert lease is not None
    doc: dict[str, Any] = json.loads(lease["metadata"]["annotations"][ACTIVITY_ANNOTATION])
    return doc


async def test_a_request_open_on_a_peer_is_never_cut_and_calls_the_sleep_off(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    leader, follower = await two_replicas(k8s_emulator, make_world)
    # A request the follower took after its last record: the leader cannot know of it.
    follower.ledger.begin(APP)
    sleeping = asyncio.ensure_future(leader.lifecycle.sleep(APP))
    # The follower takes the app out of rotation at once, but the pod stays up while
    # the request is open.
    await until(lambda: follower.state(APP).phase is not Phase.AWAKE, 2)
    for _ in range(20):
        await asyncio.sleep(0.02)
        assert replicas_of(k8s_emulator, "web") == 1
        assert not sleeping.done()
    follower.ledger.end(APP)  # it just ended: the app was used, so it is not idle
    await asyncio.wait_for(sleeping, AGREE_WITHIN + 2)
    assert replicas_of(k8s_emulator, "web") == 1
    assert scale_writes(k8s_emulator) == 1  # the wake's, and no scale-down
    assert leader.stats.sleep_proposals == {"wanted": 1}
    # Both replicas serve it again, without a new wake.
    await until(lambda: follower.state(APP).phase is Phase.AWAKE, 2)
    await leader.lifecycle.wake(APP)
    assert scale_writes(k8s_emulator) == 1


async def test_a_request_arriving_on_a_peer_during_the_proposal_is_held_and_served(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    leader, follower = await two_replicas(k8s_emulator, make_world, idle_after="10ms")
    follower.ledger.begin(APP)  # keeps the follower from answering "done" at once
    sleeping = asyncio.ensure_future(leader.lifecycle.sleep(APP))
    await until(lambda: follower.state(APP).phase is not Phase.AWAKE, 2)
    # A new request on the follower is held there and demands a wake: the follower
    # answers "wanted" and the leader calls the sleep off without waiting it out.
    asked = time.monotonic()
    await asyncio.wait_for(follower.lifecycle.wake(APP), 5)
    assert time.monotonic() - asked < AGREE_WITHIN / 2
    await asyncio.wait_for(sleeping, 2)
    assert replicas_of(k8s_emulator, "web") == 1
    assert scale_writes(k8s_emulator) == 1  # served by the running pod: no cold start
    assert leader.stats.sleep_proposals == {"wanted": 1}
    follower.ledger.end(APP)


async def test_quiet_peers_agree_and_the_proposal_does_not_hold_a_later_wake(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    leader, follower = await two_replicas(k8s_emulator, make_world, idle_after="10ms")
    await asyncio.sleep(0.05)
    asked = time.monotonic()
    await asyncio.wait_for(leader.lifecycle.sleep(APP), AGREE_WITHIN)
    assert time.monotonic() - asked < AGREE_WITHIN / 2  # answered, not timed out
    assert replicas_of(k8s_emulator, "web") == 0
    answers = record_of(k8s_emulator, "wp-b").get("drain") or {}
    proposals = record_of(k8s_emulator, "wp-a").get("sleep") or {}
    assert answers.get(APP) == [proposals[APP][0], "done"]
    assert leader.stats.sleep_proposals == {"agreed": 1}
    await until(lambda: follower.state(APP).phase is Phase.ASLEEP, 2)
    # The proposal is still in the leader's record, but it did its work: a wake on the
    # follower is not held by it.
    asked = time.monotonic()
    await asyncio.wait_for(follower.lifecycle.wake(APP), 5)
    assert time.monotonic() - asked < 1.0
    assert replicas_of(k8s_emulator, "web") == 1


async def test_an_open_tunnel_on_a_peer_answers_wanted_at_once(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    leader, follower = await two_replicas(k8s_emulator, make_world, idle_after="10ms")
    follower.ledger.tunnel_opened(APP)  # a WebSocket opened after the last record
    asked = time.monotonic()
    await asyncio.wait_for(leader.lifecycle.sleep(APP), AGREE_WITHIN + 1)
    assert time.monotonic() - asked < AGREE_WITHIN / 2
    assert replicas_of(k8s_emulator, "web") == 1
    assert (record_of(k8s_emulator, "wp-b").get("drain") or {})[APP][1] == "wanted"
    assert leader.stats.sleep_proposals == {"wanted": 1}
    follower.ledger.tunnel_closed(APP)


async def test_a_proposal_left_by_a_dead_leader_holds_an_app_only_for_its_time_to_live(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(app_deployment("web", hosts="web.example.com", replicas=1))
    replica = await make_world(k8s_emulator, identity="wp-b")
    await until(lambda: replica.state(APP).phase is Phase.AWAKE, 5)
    # The record of a leader that proposed a sleep and then died, as it would write it.
    k8s_emulator.create({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": record_name("wakeproxy", "wp-gone"), "namespace": LEASE_NS,
                     "labels": {"wakeproxy.io/activity": "true"},
                     "annotations": {ACTIVITY_ANNOTATION: json.dumps(
                         {"apps": {}, "sleep": {APP: ["dead-1", 1.0]}})}},
        "spec": {"holderIdentity": "wp-gone"},
    })
    await until(lambda: replica.state(APP).phase is not Phase.AWAKE, 2)
    held_at = time.monotonic()
    await until(lambda: (record_of(k8s_emulator, "wp-b").get("drain") or {}).get(APP), 2)
    assert record_of(k8s_emulator, "wp-b")["drain"][APP] == ["dead-1", "done"]
    # A request now is held, and served once the proposal's second has run out.
    await asyncio.wait_for(replica.lifecycle.wake(APP), 3)
    assert 0.8 <= time.monotonic() - held_at < 2.5
    assert replicas_of(k8s_emulator, "web") == 1 and scale_writes(k8s_emulator) == 0
    # The token is spent: the same proposal, still in the record, holds nothing again.
    await asyncio.sleep(0.3)
    assert replica.state(APP).phase is Phase.AWAKE


async def test_a_peer_that_cannot_write_its_answer_keeps_the_app_up_and_gets_it_back(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    # A peer counts as gone once its record has not changed for `stale_after` (16 s with
    # the default interval); here it is alive, only its writes fail.
    leader, follower = await two_replicas(k8s_emulator, make_world, idle_after="10ms",
                                          stale_after=10.0)
    # The follower's record cannot be written (the API refuses it): its answer never
    # arrives, so the leader must not take silence for consent.
    rule = k8s_emulator.faults.fail(500, times=None, verb="update", resource="leases",
                                    name=record_name("wakeproxy", "wp-b"))
    asked = time.monotonic()
    await asyncio.wait_for(leader.lifecycle.sleep(APP), AGREE_WITHIN + 2)
    assert time.monotonic() - asked >= AGREE_WITHIN - 0.1
    assert replicas_of(k8s_emulator, "web") == 1
    assert leader.stats.sleep_proposals == {"unanswered": 1}
    # The withdrawal reaches the follower through its watch: it serves the app again.
    await until(lambda: follower.state(APP).phase is Phase.AWAKE, 2)
    await until(lambda: leader.state(APP).phase is Phase.AWAKE, 2)
    k8s_emulator.faults.remove(rule)
