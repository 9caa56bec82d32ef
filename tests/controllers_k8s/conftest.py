"""Controllers on Kubernetes, against the API emulator (its kubelet runs Job and app pods)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import k8s_emulator, make_k8s_emulator
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.client import connect

__all__ = ["k8s_emulator", "make_k8s_emulator"]


@pytest.fixture
async def api(k8s_emulator: Emulator) -> AsyncIterator[Api]:
    client = await connect(kubeconfig=str(k8s_emulator.wakeproxy_kubeconfig), incluster=None,
                           pool_size=8)
    try:
        yield Api(client, timeout=5.0, stats=PlatformStats(leader=False))
    finally:
        await client.close()
