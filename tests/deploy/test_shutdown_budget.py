"""A replica's whole shutdown fits in the grace period the shipped manifests give it.

The kubelet counts terminationGracePeriodSeconds from the start of the preStop hook and
sends SIGKILL when it is spent: the preStop pause, the drain (`drain_grace`) and the
hand-back of the lease and activity record must all fit, or a rollout cuts drains short.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import parse_shipped
from tests.k8s_emulator import Emulator
from tests.platforms.kubernetes.support import World, until
from wakeproxy.platforms.kubernetes.platform import handback_budget
from wakeproxy.settings import KubernetesSettings

ROOT = Path(__file__).resolve().parents[2]
MakeWorld = Callable[..., Coroutine[Any, Any, World]]
EXIT_MARGIN = 2.0  # the process exiting after its last step, and clock slack


def _docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "k8s" / name).read_text()) if d]


def _pre_stop_seconds(container: dict[str, Any]) -> float:
    hook = (container.get("lifecycle") or {}).get("preStop") or {}
    if "sleep" in hook:
        return float(hook["sleep"]["seconds"])
    command = (hook.get("exec") or {}).get("command") or []
    if command and Path(command[0]).name == "sleep":
        return float(command[1])
    assert not hook, f"a preStop hook this test cannot time: {hook}"
    return 0.0


def test_the_shutdown_fits_in_the_termination_grace_period() -> None:
    deployment = next(d for d in _docs("deployment.yaml") if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == "wakeproxy")
    configmap = next(d for d in _docs("configmap.yaml") if d["kind"] == "ConfigMap")
    settings = parse_shipped(configmap["data"]["cluster.yaml"])
    k = settings.kubernetes or KubernetesSettings()
    needed = (_pre_stop_seconds(container) + settings.drain_grace + handback_budget(k)
              + EXIT_MARGIN)
    assert needed <= pod["terminationGracePeriodSeconds"], (
        f"preStop {_pre_stop_seconds(container)}s + drain_grace {settings.drain_grace}s + "
        f"hand-back {handback_budget(k)}s + {EXIT_MARGIN}s > terminationGracePeriodSeconds "
        f"{pod['terminationGracePeriodSeconds']}")


async def test_a_stalled_api_does_not_stretch_the_hand_back(
    k8s_emulator: Emulator, make_world: MakeWorld,
) -> None:
    world = await make_world(k8s_emulator, request_timeout=10.0)
    await until(world.platform.leader, 10)
    k8s_emulator.faults.stall(30.0, times=None)  # the API hangs while we shut down
    began = time.monotonic()
    await world.lifecycle.close()
    assert time.monotonic() - began <= handback_budget(world.platform._settings) + 1.0
