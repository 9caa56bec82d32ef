"""Image pulls on the emulated node: slow ones leave the pod Pending with an address,
failing ones report ErrImagePull and ImagePullBackOff, as a real kubelet does."""

from __future__ import annotations

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.manifests import deployment, http_server_command
from tests.platforms.kubernetes.support import until


def _waiting(emulator: Emulator) -> str | None:
    pods = emulator.pods(app="web")
    statuses = (pods[0].get("status") or {}).get("containerStatuses") if pods else None
    if not statuses:
        return None
    return str((statuses[0]["state"].get("waiting") or {}).get("reason") or "") or None


async def test_a_slow_pull_keeps_the_pod_pending_but_listed_not_ready(
    k8s_emulator: Emulator,
) -> None:
    k8s_emulator.kubelet.pulls.delay = 1.0
    k8s_emulator.create(deployment("web", command=http_server_command()))
    await until(lambda: _waiting(k8s_emulator) == "ContainerCreating")
    [pod] = k8s_emulator.pods(app="web")
    assert pod["status"]["phase"] == "Pending" and pod["status"]["podIP"]
    slices = await until(lambda: k8s_emulator.endpoint_slices("web"))
    assert slices[0]["endpoints"][0]["conditions"]["ready"] is False
    await until(lambda: k8s_emulator.ready_ports("web"), 10)  # pulled, started, ready


async def test_a_failing_pull_never_starts_the_container(k8s_emulator: Emulator) -> None:
    k8s_emulator.kubelet.pulls.failure = "manifest unknown"
    k8s_emulator.create(deployment("web", command=http_server_command()))
    await until(lambda: _waiting(k8s_emulator) == "ErrImagePull")
    await until(lambda: _waiting(k8s_emulator) == "ImagePullBackOff")
    assert not k8s_emulator.kubelet.live_process_groups()


async def test_an_unschedulable_pod_has_no_address_until_a_node_fits(
    k8s_emulator: Emulator,
) -> None:
    k8s_emulator.kubelet.scheduling.delay = 1.0
    k8s_emulator.create(deployment("web", command=http_server_command()))
    pods = await until(lambda: k8s_emulator.pods(app="web")
                       and k8s_emulator.pods(app="web")[0].get("status", {}).get("conditions"))
    [pod] = k8s_emulator.pods(app="web")
    [scheduled] = pod["status"]["conditions"]
    assert (scheduled["status"], scheduled["reason"]) == ("False", "Unschedulable")
    assert pods and "podIP" not in pod["status"] and not k8s_emulator.endpoint_slices("web")
    await until(lambda: k8s_emulator.ready_ports("web"), 10)  # a node was added
