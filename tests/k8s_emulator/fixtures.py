"""pytest fixtures: a running emulator and a real `kubernetes_asyncio` client pointed at it.

Import them from a conftest (`from tests.k8s_emulator.fixtures import k8s_emulator, k8s_api, ...`).
`k8s_emulator` is plain HTTP with a kubeconfig; `k8s_emulator_tls` is HTTPS with a throwaway
CA and in-cluster files; `make_k8s_emulator` builds one with a custom `EmulatorConfig`. At
teardown every emulator is closed, and the test fails if any process the kubelet started is
still alive or if the emulator itself raised. The client honours HTTP(S)_PROXY, so the
fixtures set NO_PROXY for 127.0.0.1 and localhost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import new_client_from_config

from .config import EmulatorConfig
from .server import Emulator

EmulatorFactory = Callable[..., Awaitable[Emulator]]


def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


async def close_and_check(emulator: Emulator) -> None:
    """Close the emulator; fail if a process survived or the emulator hit an internal error."""
    async with asyncio.timeout(60):
        await emulator.close()
    leftover = emulator.kubelet.live_process_groups()
    assert not leftover, f"processes still running after the emulator closed: {leftover}"
    assert not emulator.errors, f"the emulator failed internally: {emulator.errors!r}"


@pytest.fixture
async def make_k8s_emulator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[EmulatorFactory]:
    _no_proxy(monkeypatch)
    started: list[Emulator] = []

    async def make(config: EmulatorConfig | None = None, **overrides: Any) -> Emulator:
        cfg = config or EmulatorConfig(**overrides)
        emulator = Emulator(cfg, workdir=tmp_path / f"k8s-emulator-{len(started)}")
        started.append(emulator)
        await emulator.start()
        return emulator

    try:
        yield make
    finally:
        for emulator in started:
            await close_and_check(emulator)


@pytest.fixture
async def k8s_emulator(make_k8s_emulator: EmulatorFactory) -> Emulator:
    return await make_k8s_emulator()


@pytest.fixture
async def k8s_emulator_tls(make_k8s_emulator: EmulatorFactory) -> Emulator:
    return await make_k8s_emulator(tls=True)


@pytest.fixture
async def k8s_api(k8s_emulator: Emulator) -> AsyncIterator[ApiClient]:
    """A real kubernetes_asyncio ApiClient loaded from the emulator's kubeconfig."""
    client = await new_client_from_config(config_file=str(k8s_emulator.kubeconfig))
    try:
        yield client
    finally:
        await client.close()
