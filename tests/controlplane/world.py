"""A control plane over real local processes: board, demand, lifecycle, LocalPlatform."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from wakeproxy.controlplane.apps import install_apps
from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.controlplane.platform import Platform
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import AppState, Phase, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import WakeStats
from wakeproxy.platforms.local import LocalPlatform
from wakeproxy.settings import LocalApp


@dataclass
class World:
    clock: Clock
    board: ReadinessBoard
    routes: Routes
    ledger: ActivityLedger
    demand: WakeDemand
    stats: WakeStats
    platform: Platform
    lifecycle: Lifecycle
    runner: asyncio.Task[None] | None = field(default=None)

    def state(self, app: str) -> AppState:
        state = self.board.get(app)
        assert state is not None
        return state

    async def close(self) -> None:
        await self.lifecycle.close()
        if self.runner is not None:
            self.runner.cancel()
            await asyncio.gather(self.runner, return_exceptions=True)


async def build_world(
    apps: tuple[LocalApp, ...], clock: Clock,
    platform_factory: Callable[[tuple[LocalApp, ...]], Platform] = LocalPlatform,
    run: bool = True,
) -> World:
    board = ReadinessBoard(clock)
    routes = Routes()
    install_apps([a.policy for a in apps], board, routes)
    platform = platform_factory(apps)
    await platform.start()
    demand, stats = WakeDemand(), WakeStats()
    lifecycle = Lifecycle(board=board, demand=demand, platform=platform, stats=stats, clock=clock)
    world = World(clock, board, routes, ActivityLedger(clock), demand, stats, platform, lifecycle)
    if run:
        world.runner = asyncio.create_task(lifecycle.run(), name="test:lifecycle")
    return world


async def until(state: AppState, check: Callable[[AppState], bool], within: float = 10.0) -> None:
    """Wait for the board to show `check(state)`; never misses a transition."""
    async with asyncio.timeout(within):
        while not check(state):
            await state.changed().wait()


def phase_of(state: AppState) -> Phase:
    """The phase now (a call, so a type checker does not pin it after an assert)."""
    return state.phase


def phase_is(phase: Phase) -> Callable[[AppState], bool]:
    return lambda s: s.phase is phase
