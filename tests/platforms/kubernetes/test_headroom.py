"""The headroom on the API emulator: the leader keeps a placeholder Deployment sized to the
sleeping apps, follows them as they change, writes only when that changes, and needs no
more than the headroom's own Role; every replica reports what is held."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.fixtures import EmulatorFactory
from tests.k8s_emulator.install import K8S_DIR
from tests.k8s_emulator.resources import DEPLOYMENTS
from tests.platforms.kubernetes.support import LEASE_NS, World, app_deployment, until
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import SystemClock
from wakeproxy.model.stats import RequestStats, WakeStats
from wakeproxy.obs.metrics import build_registry
from wakeproxy.platforms.kubernetes import scaleups
from wakeproxy.settings import Headroom

NAME = "wakeproxy-headroom"
MakeWorld = Callable[..., Coroutine[Any, Any, World]]


def sized_app(name: str, *, cpu: str | None = None, memory: str | None = None,
              replicas: int = 0, **extra: str) -> dict[str, Any]:
    dep = app_deployment(name, hosts=f"{name}.example.com", replicas=replicas, **extra)
    requests = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v is not None}
    if requests:
        dep["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": requests}
    return dep


def placeholders(emulator: Emulator) -> dict[str, Any] | None:
    return emulator.store.find(DEPLOYMENTS, LEASE_NS, NAME)


def held(emulator: Emulator) -> tuple[int, dict[str, str]] | None:
    """(replicas, one placeholder's requests) of the headroom Deployment, or None."""
    dep = placeholders(emulator)
    if dep is None:
        return None
    [pause] = dep["spec"]["template"]["spec"]["containers"]
    return dep["spec"]["replicas"], pause["resources"]["requests"]


def writes(emulator: Emulator) -> list[str]:
    """The verbs of every request that wrote the headroom Deployment, in order."""
    return [r.verb or "" for r in emulator.recorder.requests
            if r.resource == "deployments" and r.name == NAME
            and r.verb in ("create", "patch", "update", "delete")]


async def test_the_leader_holds_room_for_the_largest_sleeping_apps_and_follows_them(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(sized_app("big", cpu="500m", memory="256Mi"))
    k8s_emulator.create(sized_app("small", cpu="100m", memory="64Mi"))
    k8s_emulator.create(sized_app("free"))  # no requests: needs no room
    k8s_emulator.create(sized_app("busy", cpu="4", memory="4Gi", replicas=1))  # awake
    world = await make_world(k8s_emulator)
    await until(world.platform.leader, 5)

    # Two sleeping apps with requests: a placeholder each, shaped like the larger.
    await until(lambda: held(k8s_emulator) == (2, {"cpu": "500m", "memory": "256Mi"}), 5)
    dep = placeholders(k8s_emulator)
    assert dep is not None
    assert dep["spec"]["template"]["spec"]["priorityClassName"] == "wakeproxy-headroom"
    assert writes(k8s_emulator) == ["patch"]  # one server-side apply created it
    assert world.stats.headroom is not None
    await until(lambda: world.stats.headroom is not None and world.stats.headroom.desired == 2)

    # Resized: the small app now asks for more CPU than the big one.
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "small", lambda d: d["spec"]["template"][
        "spec"]["containers"][0].update(resources={"requests": {"cpu": "1", "memory": "64Mi"}}))
    await until(lambda: held(k8s_emulator) == (2, {"cpu": "1", "memory": "256Mi"}), 5)

    # Woken: its pods hold their own room now.
    await world.lifecycle.wake("default.big")
    await until(lambda: held(k8s_emulator) == (1, {"cpu": "1", "memory": "64Mi"}), 5)

    # A change that does not move the sizing writes nothing.
    before = len(writes(k8s_emulator))
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "free", lambda d: d["metadata"][
        "annotations"].update({"wakeproxy.io/idle-after": "10m"}))
    await until(lambda: world.state("default.free").policy.idle_after == 600.0, 5)
    # Deleted: nothing sleeps with requests; the Deployment stays, at zero.
    k8s_emulator.store.delete(DEPLOYMENTS, "default", "small")
    await until(lambda: held(k8s_emulator) == (0, {"cpu": "1", "memory": "64Mi"}), 5)
    assert len(writes(k8s_emulator)) == before + 1

    # Scaled out (an HPA), then put to sleep: room comes back for as many pods as it
    # ran before the sleep, which its next wake restores.
    k8s_emulator.store.mutate(DEPLOYMENTS, "default", "big",
                              lambda d: d["spec"].update(replicas=3))
    await until(lambda: len(world.state("default.big").endpoints) == 3, 10)
    await world.lifecycle.sleep("default.big")
    await until(lambda: held(k8s_emulator) == (3, {"cpu": "500m", "memory": "256Mi"}), 5)
    assert set(writes(k8s_emulator)) == {"patch"}


async def test_only_the_leader_writes_and_every_replica_reports_what_is_held(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(sized_app("shop", cpu="250m", memory="128Mi"))
    first = await make_world(k8s_emulator)
    second = await make_world(k8s_emulator, identity="wp-1")
    await until(lambda: first.platform.leader() or second.platform.leader(), 5)
    await until(lambda: held(k8s_emulator) == (1, {"cpu": "250m", "memory": "128Mi"}), 5)
    for world in (first, second):
        await until(lambda w=world: w.stats.headroom is not None  # type: ignore[misc]
                    and w.stats.headroom.desired == 1, 5)
    assert writes(k8s_emulator) == ["patch"]
    # The metrics show it on either replica: wanted, and (no pod running yet) how many are.
    stats = second.stats
    registry = build_registry(board=ReadinessBoard(SystemClock()),
                              ledger=ActivityLedger(SystemClock()), request_stats=RequestStats(),
                              wake_stats=WakeStats(), clock=SystemClock(), cluster="c",
                              version="v", platform_stats=stats)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(generate_latest(registry).decode())
               for s in family.samples}
    desired = (("state", "desired"),)
    assert samples[("wakeproxy_headroom_pods", desired)] == 1
    assert samples[("wakeproxy_headroom_cpu_cores", desired)] == 0.25
    assert samples[("wakeproxy_headroom_memory_bytes", desired)] == 128 * 2**20
    assert samples[("wakeproxy_wakes_waited_for_scheduling_total", ())] == 0


async def test_turned_off_the_placeholders_are_deleted(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.create(sized_app("shop", cpu="250m"))
    world = await make_world(k8s_emulator)
    await until(lambda: held(k8s_emulator) is not None, 5)
    await world.close()
    await make_world(k8s_emulator, identity="wp-1", headroom=Headroom(enabled=False))
    await until(lambda: placeholders(k8s_emulator) is None, 10)
    assert writes(k8s_emulator)[-1] == "delete"


async def test_fixed_totals_hold_room_with_nothing_asleep(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    world = await make_world(k8s_emulator,
                             headroom=Headroom(cpu_millis=2000, memory_bytes=2**30, pods=2))
    await until(world.platform.leader, 5)
    await until(lambda: held(k8s_emulator) == (2, {"cpu": "1", "memory": "512Mi"}), 5)


def _install_without_controllers(tmp_path: Path) -> Path:
    """k8s/ with the controllers' Role (which also grants Deployments in wakeproxy's
    namespace) removed: what is left for the headroom is its own Role."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S_DIR, copy)
    rbac = copy / "rbac.yaml"
    docs = [d for d in yaml.safe_load_all(rbac.read_text()) if d]
    kept = [d for d in docs if d["metadata"]["name"] != "wakeproxy-controllers"]
    assert len(kept) == len(docs) - 2
    rbac.write_text(yaml.safe_dump_all(kept))
    return copy


async def test_the_headroom_role_grants_what_the_headroom_calls(
    tmp_path: Path, make_k8s_emulator: EmulatorFactory, make_world: MakeWorld,
) -> None:
    emulator = await make_k8s_emulator(install_dir=_install_without_controllers(tmp_path))
    emulator.create(sized_app("shop", cpu="250m"))
    world = await make_world(emulator)
    await until(lambda: held(emulator) == (1, {"cpu": "250m"}), 5)  # created by an apply
    emulator.store.mutate(DEPLOYMENTS, "default", "shop", lambda d: d["spec"]["template"][
        "spec"]["containers"][0].update(resources={"requests": {"cpu": "300m"}}))
    await until(lambda: held(emulator) == (1, {"cpu": "300m"}), 5)  # patched
    await world.close()
    await make_world(emulator, identity="wp-1", headroom=Headroom(enabled=False))
    await until(lambda: placeholders(emulator) is None, 10)  # deleted
    refused = [(r.verb, r.path) for r in emulator.recorder.requests if r.status == 403]
    assert refused == []
    assert {"create", "patch", "delete"} <= {v for r in emulator.recorder.requests
                                             if r.name == NAME for v in r.verbs}


async def test_a_wake_whose_pod_waits_for_a_node_is_counted_once_and_a_prompt_one_is_not(
    k8s_emulator: Emulator, make_world: MakeWorld, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scaleups, "SCHEDULING_WAIT", 0.3)  # 2 s in production
    k8s_emulator.create(sized_app("prompt", cpu="100m"))
    k8s_emulator.create(sized_app("stuck", cpu="100m"))
    world = await make_world(k8s_emulator)
    await world.lifecycle.wake("default.prompt")
    await asyncio.sleep(0.5)  # past the wait: a prompt wake's pod was scheduled before it
    assert world.stats.scheduling_waits == 0
    k8s_emulator.kubelet.scheduling.delay = 1.0  # no node fits until one is added
    await world.lifecycle.wake("default.stuck")  # placed once the node is there
    assert world.stats.scheduling_waits == 1
    await asyncio.sleep(0.5)
    assert world.stats.scheduling_waits == 1  # once per scale-up


async def test_a_failed_write_is_retried_and_placeholders_deleted_by_hand_come_back(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    k8s_emulator.faults.fail(500, times=1, verb="patch", resource="deployments", name=NAME)
    k8s_emulator.create(sized_app("shop", cpu="250m"))
    world = await make_world(k8s_emulator)
    await until(lambda: held(k8s_emulator) == (1, {"cpu": "250m"}), 10)
    assert [r.status for r in k8s_emulator.recorder.requests
            if r.name == NAME and r.verb == "patch"] == [500, 201]  # 201: created
    assert world.stats.api_errors.get(500) == 1
    k8s_emulator.store.delete(DEPLOYMENTS, LEASE_NS, NAME)
    await until(lambda: held(k8s_emulator) == (1, {"cpu": "250m"}), 10)
