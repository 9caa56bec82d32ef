"""Image pulls: the kubelet resolves a registry host as a node does, so an image named by
a cluster DNS name never starts (ErrImagePull, then ImagePullBackOff) while names a node
resolves pull."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s_emulator import Emulator
from tests.k8s_emulator.images import node_resolves, pull_error, registry_host
from tests.k8s_emulator.manifests import deployment

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("image", "host", "pulls"), [
    ("python:3.12-alpine", "docker.io", True),
    ("library/python", "docker.io", True),
    ("emulated/app:1", "docker.io", True),
    ("ghcr.io/wakeproxy/wakeproxy:0.1.0", "ghcr.io", True),
    (f"localhost:30500/shop@{DIGEST}", "localhost:30500", True),
    ("127.0.0.1:5000/shop:1", "127.0.0.1:5000", True),
    ("localhost/shop:1", "localhost", True),
    ("registry.example.com:5000/shop:1", "registry.example.com:5000", True),
    ("wakeproxy-registry.wakeproxy.svc:5000/shop:1", "wakeproxy-registry.wakeproxy.svc:5000",
     False),
    ("registry.ns.svc.cluster.local/shop:1", "registry.ns.svc.cluster.local", False),
    ("10-0-0-1.ns.pod.cluster.local:5000/shop", "10-0-0-1.ns.pod.cluster.local:5000", False),
    ("registry:5000/shop:1", "registry:5000", False),
])
def test_registry_hosts_as_a_node_resolves_them(image: str, host: str, pulls: bool) -> None:
    assert registry_host(image) == host
    assert node_resolves(host) is pulls
    assert (pull_error(image) is None) is pulls


async def test_an_image_from_a_cluster_dns_name_never_starts(k8s_emulator: Emulator) -> None:
    image = "wakeproxy-registry.wakeproxy.svc:5000/shop:1"
    manifest = deployment("web", replicas=1)
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = image
    k8s_emulator.create(manifest)

    def waiting() -> dict[str, Any] | None:
        for pod in k8s_emulator.pods(app="web"):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                state = status["state"].get("waiting") or {}
                if state.get("reason") == "ImagePullBackOff":
                    return dict(pod)
        return None

    pod = await k8s_emulator.store.wait_until(waiting, 5)
    assert pod["status"]["phase"] == "Pending"
    assert not k8s_emulator.kubelet.processes  # nothing started
    assert k8s_emulator.ready_ports("web") == []
    [status] = pod["status"]["containerStatuses"]
    assert status["image"] == image and status["started"] is False


async def test_an_image_a_node_resolves_runs(k8s_emulator: Emulator) -> None:
    manifest = deployment("web", replicas=1)
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    container["image"] = f"localhost:30500/web@{DIGEST}"
    k8s_emulator.create(manifest)
    await k8s_emulator.store.wait_until(lambda: k8s_emulator.ready_ports("web"), 10)
