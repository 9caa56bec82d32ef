"""End-to-end tests of wakeproxy on Kubernetes: real `wakeproxy serve` processes, real
HTTP through the data plane to real pod processes, the real API client.

Every test runs against the API emulator. Tests marked `k8s_e2e` also run against a real
cluster when WAKEPROXY_TEST_KUBECONFIG names its kubeconfig (each in a fresh namespace
it deletes afterwards); without it that variant is skipped — the only skip here.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import Wakeproxy
from tests.e2e_k8s.cluster import REAL_CLUSTER_ENV, Cluster, new_namespace, start
from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory, make_k8s_emulator

__all__ = ["make_k8s_emulator"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "k8s_e2e: also runs against a real cluster when "
        f"{REAL_CLUSTER_ENV} is set (always against the API emulator)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "cluster" in metafunc.fixturenames:
        targets = ["emulator"]
        if metafunc.definition.get_closest_marker("k8s_e2e") is not None:
            targets.append("real-cluster")
        metafunc.parametrize("cluster_target", targets)


@pytest.fixture
async def cluster(
    cluster_target: str, make_k8s_emulator: EmulatorFactory,
) -> AsyncIterator[Cluster]:
    if cluster_target == "emulator":
        emulator = await make_k8s_emulator(bookmark_interval=0.5)
        c = await Cluster(emulator.kubeconfig, "default", emulator).open()
    else:
        kubeconfig = os.environ.get(REAL_CLUSTER_ENV)
        if not kubeconfig:
            pytest.skip(f"{REAL_CLUSTER_ENV} is not set: the real-cluster run is opt-in")
        c = await Cluster(Path(kubeconfig), new_namespace(), None).open()
    try:
        yield c
    finally:
        await c.close()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
async def replicas(
    cluster: Cluster, tmp_path: Path, no_proxy: None,
) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Wakeproxy]]]:
    """Start wakeproxy replicas on the cluster; each stopped (SIGTERM) at teardown."""
    started: list[Wakeproxy] = []

    async def make(identity: str = "wp-a", **config: Any) -> Wakeproxy:
        kubernetes = {"identity": identity, **config.pop("kubernetes", {})}
        settings = cluster.wakeproxy_config(**kubernetes)
        for key, value in config.items():
            settings[key] = {**settings[key], **value} if isinstance(value, dict) else value
        directory = tmp_path / identity
        directory.mkdir()
        wp = Wakeproxy(directory, settings)
        started.append(wp)
        return await start(wp)

    yield make
    for wp in started:
        await asyncio.to_thread(_stop, wp)


def _stop(wp: Wakeproxy) -> None:
    if wp.proc is not None and wp.proc.poll() is None:
        wp.terminate()


@pytest.fixture
def emulator(cluster: Cluster) -> Iterator[Emulator]:
    assert cluster.emulator is not None
    yield cluster.emulator
