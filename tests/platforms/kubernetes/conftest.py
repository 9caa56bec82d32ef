"""Fixtures: the Kubernetes API emulator, and wakeproxy's control plane on top of it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from tests.k8s_emulator.fixtures import k8s_api, k8s_emulator, k8s_emulator_tls, make_k8s_emulator
from tests.platforms.kubernetes.support import World, build_world

__all__ = ["k8s_api", "k8s_emulator", "k8s_emulator_tls", "make_k8s_emulator", "make_world"]


@pytest.fixture
async def make_world() -> AsyncIterator[Callable[..., Coroutine[Any, Any, World]]]:
    """Build worlds (platform + lifecycle on an emulator); all closed at teardown."""
    worlds: list[World] = []

    async def make(*args: Any, **kwargs: Any) -> World:
        world = await build_world(*args, **kwargs)
        worlds.append(world)
        return world

    try:
        yield make
    finally:
        for world in reversed(worlds):
            await world.close()
