"""A populated model (board, ledger, stats) and a scripted control plane for obs tests.

`ScriptedCommands` stands in for the control plane at the admin API's boundary: it moves
the readiness board the way the real lifecycle does and raises the control plane's own
error types, with outcomes chosen per test.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from wakeproxy.controlplane.errors import ShuttingDown, UnknownApp, WakeError, WakeTimedOut
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import FailureKind, ReadinessBoard
from wakeproxy.model.clock import FakeClock
from wakeproxy.model.routes import Routes, RouteTable
from wakeproxy.model.stats import RequestStats, WakeStats
from wakeproxy.obs.metrics import build_registry

START = 1000.0
WALL_OFFSET = 1.7e9


@dataclass
class World:
    clock: FakeClock = field(default_factory=lambda: FakeClock(START, WALL_OFFSET))
    requests: RequestStats = field(default_factory=RequestStats)
    wakes: WakeStats = field(default_factory=WakeStats)
    routes: Routes = field(default_factory=Routes)

    def __post_init__(self) -> None:
        self.board = ReadinessBoard(self.clock)
        self.ledger = ActivityLedger(self.clock)

    def registry(self, cluster: str = "test") -> CollectorRegistry:
        return build_registry(
            board=self.board, ledger=self.ledger, request_stats=self.requests,
            wake_stats=self.wakes, clock=self.clock, cluster=cluster, version="9.9.9",
        )


def make_world() -> World:
    """Three apps after 130 s of life:

    - hello: asleep the whole time, never accessed, 2 requests held now, 1 turned away;
    - api: asleep 120 s, woke in 1.5 s, awake at 127.0.0.1:41000, 1 request in flight,
      1 WebSocket open, last access 8.5 s ago;
    - docs: one failed wake ("exited with code 3"), asleep again.
    Plus one request for an unknown host.
    """
    w = World()
    policies = [
        AppPolicy("hello", ("hello.localhost", "*.hello.localhost"), idle_after=30.0),
        AppPolicy("api", ("api.localhost",), idle_after=300.0, wake_timeout=20.0),
        AppPolicy("docs", ("docs.localhost",), idle_after=3600.0),
    ]
    w.routes.table = RouteTable.build((p.name, p.hosts) for p in policies)
    for p in policies:
        w.board.put(p)
    c, b = w.clock, w.board
    c.advance(120)
    b.mark_waking("api")
    c.advance(1.5)
    b.mark_ready("api", (Endpoint("127.0.0.1", 41000),))
    w.wakes.wake_finished("api", "ready", 1.5)
    b.mark_waking("docs")
    b.mark_wake_failed("docs", "exited with code 3")
    w.wakes.wake_finished("docs", "failed", 0.2)

    w.ledger.begin("api")
    w.ledger.end("api")
    w.ledger.begin("api")  # still in flight
    w.ledger.tunnel_opened("api")
    for seconds in (0.004, 0.02, 0.3):
        w.requests.record("api", 200, seconds)
    w.requests.record("api", 502, 0.01)
    w.requests.record("", 404, 0.0002)
    hello = w.requests.app("hello")
    hello.held = 2
    hello.rejected_held = 1
    hello.held_duration.observe(0.8)
    c.advance(8.5)  # now = START + 130
    return w


class ScriptedCommands:
    """AppCommands for tests: wakes and sleeps move the board; outcomes are scripted."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.fail: dict[str, str] = {}
        self.time_out: set[str] = set()
        self.unreachable: set[str] = set()
        self.gate: asyncio.Event | None = None
        self.closed = False
        self.calls: list[tuple[str, str]] = []
        self.finished: list[tuple[str, str]] = []

    async def wake(self, app: str) -> None:
        self.calls.append(("wake", app))
        board = self.world.board
        if board.get(app) is None or app == "vanishing":
            raise UnknownApp(app)
        if self.closed:
            raise ShuttingDown()
        board.mark_waking(app)
        if self.gate is not None:
            await self.gate.wait()
        if app in self.fail:
            board.mark_wake_failed(app, self.fail[app])
            raise WakeError(app, self.fail[app])
        if app in self.unreachable:
            reason = "the Kubernetes API cannot be reached"
            board.mark_wake_failed(app, reason, kind=FailureKind.UNAVAILABLE)
            raise WakeError(app, reason)
        if app in self.time_out:
            reason = "no endpoint became ready within 20s"
            board.mark_wake_failed(app, reason)
            raise WakeTimedOut(app, reason)
        board.mark_ready(app, (Endpoint("127.0.0.1", 42000),))
        self.finished.append(("wake", app))

    async def sleep(self, app: str) -> None:
        self.calls.append(("sleep", app))
        board = self.world.board
        if board.get(app) is None:
            raise UnknownApp(app)
        board.mark_stopping(app)
        board.mark_asleep(app)
        self.finished.append(("sleep", app))
