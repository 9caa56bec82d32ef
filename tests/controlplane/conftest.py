from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.controlplane.world import World, build_world
from tests.platforms.procs import no_leftover_processes
from wakeproxy.model.clock import SystemClock
from wakeproxy.settings import LocalApp

__all__ = ["make_world", "no_leftover_processes"]

MakeWorld = Callable[..., Awaitable[World]]


@pytest.fixture
async def make_world() -> AsyncIterator[MakeWorld]:
    """Build a running control plane over the given apps; closed (no process left) after."""
    worlds: list[World] = []

    async def make(*apps: LocalApp, clock: Any = None, **kw: Any) -> World:
        world = await build_world(apps, clock or SystemClock(), **kw)
        worlds.append(world)
        return world

    yield make
    for world in worlds:
        await world.close()
