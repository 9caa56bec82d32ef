"""What the lifecycle does with platform events, and the sweeper with peers and the lead.

A scripted platform stands in for a cluster here (the Kubernetes platform's own tests
run the same paths against the API emulator).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from wakeproxy.controlplane.errors import WakeError
from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.controlplane.platform import (
    AppExited,
    AppsChanged,
    EndpointsChanged,
    PlatformEvent,
    WakeFailed,
)
from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import FailureKind, Phase, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.peers import PeerActivity, PeerApp
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import WakeStats

A = (Endpoint("10.0.0.1", 80),)
AB = (Endpoint("10.0.0.1", 80), Endpoint("10.0.0.2", 80))


class ScriptedPlatform:
    def __init__(self) -> None:
        self.events: asyncio.Queue[PlatformEvent] = asyncio.Queue()
        self.wake_result: tuple[Endpoint, ...] | BaseException = A
        self.gate: asyncio.Event | None = None  # set: the wakes under way return
        self.lead = True
        self.slept: list[str] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def wake(self, app: str, *, timeout: float) -> tuple[Endpoint, ...]:  # noqa: ASYNC109
        await asyncio.sleep(0)
        if self.gate is not None:
            await self.gate.wait()
        if isinstance(self.wake_result, BaseException):
            raise self.wake_result
        return self.wake_result

    async def sleep(self, app: str, *, held: bool = False) -> None:
        self.slept.append(app)

    def held_asleep(self, app: str) -> bool:
        return False

    async def next_event(self) -> PlatformEvent:
        return await self.events.get()

    def leader(self) -> bool:
        return self.lead


class Plane:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.board = ReadinessBoard(self.clock)
        self.routes = Routes()
        self.ledger = ActivityLedger(self.clock)
        self.platform = ScriptedPlatform()
        self.peers = PeerActivity(stale_after=10.0)
        self.stats = WakeStats()
        self.removed: list[str] = []  # what the other owners of per-app records were told
        self.lifecycle = Lifecycle(board=self.board, demand=WakeDemand(), platform=self.platform,
                                   stats=self.stats, clock=self.clock, routes=self.routes,
                                   app_removed=[self.removed.append])
        self.sweeper = Sweeper(board=self.board, ledger=self.ledger, lifecycle=self.lifecycle,
                               clock=self.clock, interval=1.0, leader=self.platform.leader,
                               peers=self.peers)

    def apps(self, *names_hosts: tuple[str, str], idle_after: float = 60.0) -> None:
        self.lifecycle.apply(AppsChanged(tuple(
            AppPolicy(name=n, hosts=(h,), idle_after=idle_after) for n, h in names_hosts)))

    def phase(self, app: str) -> Phase:
        state = self.board.get(app)
        assert state is not None
        return state.phase


@pytest.fixture
async def plane() -> AsyncIterator[Plane]:
    p = Plane()
    yield p
    await p.lifecycle.close()


async def test_apps_changed_installs_updates_and_removes_apps(plane: Plane) -> None:
    assert not plane.lifecycle.apps_synced.is_set()
    plane.apps(("shop", "shop.example.com"), ("blog", "blog.example.com"))
    assert plane.lifecycle.apps_synced.is_set()
    assert plane.routes.table.resolve("shop.example.com") == "shop"
    await plane.lifecycle.wake("shop")
    plane.apps(("shop", "store.example.com"))
    assert plane.routes.table.resolve("shop.example.com") is None
    assert plane.routes.table.resolve("store.example.com") == "shop"
    assert plane.phase("shop") is Phase.AWAKE  # live state survives a policy change
    assert plane.board.get("blog") is None


async def test_a_removed_app_leaves_its_wake_stats_and_every_owner_is_told(
    plane: Plane,
) -> None:
    plane.apps(("shop", "shop.example.com"), ("blog", "blog.example.com"))
    await plane.lifecycle.wake("shop")
    await plane.lifecycle.wake("blog")
    await plane.lifecycle.sleep("shop")
    assert plane.stats.sleeps == {"shop": 1}
    plane.apps(("blog", "blog.example.com"))
    assert plane.removed == ["shop"]
    assert plane.stats.wakes == {("blog", "ready"): 1}
    assert list(plane.stats.wake_duration) == ["blog"] and plane.stats.sleeps == {}
    plane.apps(("blog", "blog.example.com"))  # the same set again: nobody is told
    assert plane.removed == ["shop"]


@pytest.mark.parametrize("outcome", ["ready", "failed"])
async def test_a_wake_that_ends_after_its_app_was_removed_is_counted_nowhere(
    plane: Plane, outcome: str,
) -> None:
    """A late wake result must not bring a removed app back into the metrics."""
    plane.apps(("shop", "shop.example.com"), ("blog", "blog.example.com"))
    plane.platform.gate = asyncio.Event()
    if outcome == "failed":
        plane.platform.wake_result = WakeFailed("crashed")
    waking = asyncio.ensure_future(plane.lifecycle.wake("shop"))
    await asyncio.sleep(0.01)
    plane.apps(("blog", "blog.example.com"))
    plane.platform.gate.set()
    with contextlib.suppress(WakeError):
        await waking
    assert plane.board.get("shop") is None
    assert plane.stats.wakes == {} and plane.stats.wake_duration == {}


async def test_a_conflicting_app_set_leaves_the_current_one(plane: Plane) -> None:
    plane.apps(("shop", "shop.example.com"))
    plane.apps(("a", "x.example.com"), ("b", "x.example.com"))
    assert plane.routes.table.resolve("shop.example.com") == "shop"
    assert plane.board.get("a") is None


async def test_endpoint_changes_of_awake_sleeping_and_busy_apps(plane: Plane) -> None:
    plane.apps(("web", "web.example.com"))
    # Ready while asleep: someone scaled it by hand. Awake, with a full idle_after.
    plane.lifecycle.apply(EndpointsChanged("web", A))
    state = plane.board.get("web")
    assert state is not None and state.phase is Phase.AWAKE
    assert state.woke_at == plane.clock.monotonic()
    plane.lifecycle.apply(EndpointsChanged("web", AB))
    assert state.endpoints == AB
    plane.lifecycle.apply(EndpointsChanged("web", ()))
    assert state.phase is Phase.ASLEEP and state.endpoints == ()
    # While a sleep is under way the platform's news is ignored: the sleep decides.
    plane.lifecycle.apply(EndpointsChanged("web", A))
    plane.lifecycle.begin_sleep("web")
    plane.lifecycle.apply(EndpointsChanged("web", AB))
    assert state.phase is Phase.STOPPING
    plane.lifecycle.apply(AppExited("nobody", "unknown apps are ignored"))


async def test_a_platform_that_cannot_be_reached_fails_the_wake_as_unavailable(
    plane: Plane,
) -> None:
    plane.apps(("web", "web.example.com"))
    plane.platform.wake_result = WakeFailed("the API could not be reached",
                                            FailureKind.UNAVAILABLE)
    with pytest.raises(WakeError):
        await plane.lifecycle.wake("web")
    state = plane.board.get("web")
    assert state is not None and state.failure is not None
    assert state.failure.kind is FailureKind.UNAVAILABLE
    assert state.failure.reason == "the API could not be reached"


async def test_only_the_leader_sweeps_and_it_counts_every_replicas_activity(
    plane: Plane,
) -> None:
    plane.apps(("web", "web.example.com"), ("api", "api.example.com"), idle_after=60)
    await plane.lifecycle.wake("web")
    await plane.lifecycle.wake("api")
    now = plane.clock.monotonic
    plane.clock.advance(100)
    plane.peers.update("wp-b", {"web": PeerApp(now() - 1, 0), "api": PeerApp(now() - 90, 1)},
                       now())
    plane.platform.lead = False
    assert plane.sweeper.due() == []
    plane.platform.lead = True
    assert plane.sweeper.due() == []  # web: used a second ago elsewhere; api: busy elsewhere
    plane.clock.advance(11)  # wp-b's record is stale now: it stops counting
    assert sorted(plane.sweeper.due()) == ["api", "web"]
