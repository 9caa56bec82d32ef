"""Building blocks for tests of the Kubernetes platform against the API emulator."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.config import new_client_from_config

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import deployment, http_server_command
from tests.k8s_emulator.recorder import RecordedRequest
from tests.k8s_emulator.resources import DEPLOYMENTS
from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.controlplane.sweeper import Sweeper
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.apps import AppPolicy
from wakeproxy.model.board import AppState, ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.peers import PeerActivity
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import PlatformStats, WakeStats
from wakeproxy.platforms.kubernetes import InCluster, KubernetesPlatform
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.settings import KubernetesSettings

ENABLED = {"wakeproxy.io/enabled": "true"}
APPSERVER = Path(__file__).resolve().parents[1] / "appserver.py"  # PORT from the emulator
# wakeproxy's own namespace in the install (k8s/): its Leases live there, as in production.
LEASE_NS = "wakeproxy"


def app_deployment(
    name: str, *, hosts: str, replicas: int = 0, namespace: str = "default",
    port: str = "http", command: list[str] | None = None, **extra: str,
) -> dict[str, Any]:
    """A Deployment declaring an app; `extra` annotations as idle_after="…" style keys."""
    annotations = {"wakeproxy.io/hosts": hosts, "wakeproxy.io/port": port}
    annotations.update({f"wakeproxy.io/{k.replace('_', '-')}": v for k, v in extra.items()})
    return deployment(name, replicas=replicas, namespace=namespace, labels=dict(ENABLED),
                      annotations=annotations, command=command or http_server_command())


def replicas_of(emulator: Emulator, name: str, namespace: str = "default") -> int:
    return int(emulator.store.get(DEPLOYMENTS, namespace, name)["spec"].get("replicas") or 0)


def is_scale_write(r: RecordedRequest) -> bool:
    """A replica count written: up through the `scale` subresource, to zero as a patch of
    the Deployment that also records the count it replaced."""
    return ((r.subresource == "scale" and r.verb in ("update", "patch"))
            or (r.resource == "deployments" and r.subresource is None and r.verb == "patch"))


def scale_writes(emulator: Emulator, name: str | None = None, status: int | None = 200) -> int:
    """Replica count writes the emulator answered (with `status`, when given)."""
    return sum(1 for r in emulator.recorder.requests
               if is_scale_write(r)
               and (name is None or r.name == name)
               and (status is None or r.status == status))


async def until(check: Callable[[], Any], within: float = 10.0, every: float = 0.01) -> Any:
    """Poll `check` until it returns something truthy; that value."""
    async with asyncio.timeout(within):
        while True:
            value = check()
            if value:
                return value
            await asyncio.sleep(every)


async def api_client(emulator: Emulator, *, admin: bool = False) -> ApiClient:
    """A client acting as wakeproxy's ServiceAccount (what its components run as), or as
    the cluster's admin (for a component exercised on what wakeproxy never reads)."""
    kubeconfig = emulator.kubeconfig if admin else emulator.wakeproxy_kubeconfig
    return await new_client_from_config(config_file=str(kubeconfig))


def fast_settings(emulator: Emulator | None, **overrides: Any) -> KubernetesSettings:
    base = KubernetesSettings(
        kubeconfig=str(emulator.wakeproxy_kubeconfig) if emulator is not None else None,
        lease_duration=1.0, activity_interval=0.2, request_timeout=2.0,
        watch_timeout=30.0, watch_idle_timeout=5.0,
    )
    return dataclasses.replace(base, **overrides)


@dataclass
class World:
    """wakeproxy's control plane for one replica, on the Kubernetes platform."""

    board: ReadinessBoard
    routes: Routes
    ledger: ActivityLedger
    demand: WakeDemand
    peers: PeerActivity
    stats: PlatformStats
    wake_stats: WakeStats
    platform: KubernetesPlatform
    lifecycle: Lifecycle
    sweeper: Sweeper
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def state(self, app: str) -> AppState:
        state = self.board.get(app)
        assert state is not None, f"{app} is not on the board: {[s.name for s in self.board]}"
        return state

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.lifecycle.close()


async def build_world(
    emulator: Emulator, *, identity: str = "wp-0", defaults: AppPolicy | None = None,
    incluster: InCluster | None = None, sweep: bool = False, sweep_interval: float = 0.05,
    stale_after: float | None = None, **settings: Any,
) -> World:
    clock = SystemClock()
    board, routes, ledger = ReadinessBoard(clock), Routes(), ActivityLedger(clock)
    demand, wake_stats = WakeDemand(), WakeStats()
    k = fast_settings(None if incluster is not None else emulator, **settings)
    peers = PeerActivity(stale_after=stale_after or 3 * k.activity_interval + 0.5)
    stats = PlatformStats(leader=False)
    platform = KubernetesPlatform(
        k, defaults=defaults or AppPolicy(name="-", hosts=(), wake_timeout=10.0),
        identity=identity, lease_namespace=LEASE_NS, incluster=incluster, board=board,
        ledger=ledger, peers=peers, stats=stats, clock=clock)
    await platform.start()
    lifecycle = Lifecycle(board=board, demand=demand, platform=platform, stats=wake_stats,
                          clock=clock, routes=routes)
    sweeper = Sweeper(board=board, ledger=ledger, lifecycle=lifecycle, clock=clock,
                      interval=sweep_interval, leader=platform.leader, peers=peers)
    world = World(board, routes, ledger, demand, peers, stats, wake_stats, platform,
                  lifecycle, sweeper)
    world.tasks.append(asyncio.create_task(lifecycle.run(), name="test:lifecycle"))
    if sweep:
        world.tasks.append(asyncio.create_task(sweeper.run(), name="test:sweeper"))
    async with asyncio.timeout(10):
        await lifecycle.apps_synced.wait()
    return world


def api_of(platform: KubernetesPlatform) -> Api:
    api = platform._api
    assert api is not None
    return api
