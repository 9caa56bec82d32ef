"""The cluster's nodes: what a test declares, and the Node object a kubelet registers for it.

Owns `NodeSpec` (name, cpu, memory, pods) and the Node a kubelet would register for it:
labels (`kubernetes.io/hostname`, os, arch), `status.capacity` = `status.allocatable`
(cpu, memory, pods, ephemeral-storage), conditions Ready and no pressure, addresses,
nodeInfo. Every node is served by the one emulated kubelet on 127.0.0.1. Never schedules.
"""

from __future__ import annotations

from dataclasses import dataclass

from .meta import JSON, format_time

DEFAULT_CPU = "8"
DEFAULT_MEMORY = "16Gi"
DEFAULT_PODS = 110


@dataclass(frozen=True)
class NodeSpec:
    """A node a test declares (`EmulatorConfig(nodes=...)`, `Emulator.add_node`)."""

    name: str
    cpu: str = DEFAULT_CPU
    memory: str = DEFAULT_MEMORY
    pods: int = DEFAULT_PODS
    ephemeral_storage: str = "100Gi"


def node_object(spec: NodeSpec, kube_version: str | None) -> JSON:
    at = format_time()
    version = f"v{kube_version or '1.36'}.0"
    resources = {"cpu": str(spec.cpu), "memory": str(spec.memory), "pods": str(spec.pods),
                 "ephemeral-storage": str(spec.ephemeral_storage)}

    def condition(kind: str, status: str, reason: str, message: str) -> JSON:
        return {"type": kind, "status": status, "reason": reason, "message": message,
                "lastHeartbeatTime": at, "lastTransitionTime": at}

    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": spec.name, "labels": {
            "kubernetes.io/hostname": spec.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64"}},
        "spec": {},
        "status": {
            "capacity": dict(resources), "allocatable": dict(resources),
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory",
                          "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure",
                          "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID",
                          "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                          {"type": "Hostname", "address": spec.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": spec.name, "systemUUID": spec.name, "bootID": spec.name,
                "kernelVersion": "6.1.0", "osImage": "Debian GNU/Linux 12 (bookworm)",
                "containerRuntimeVersion": "containerd://1.7.0",
                "kubeletVersion": version, "kubeProxyVersion": version,
                "operatingSystem": "linux", "architecture": "amd64",
            },
        },
    }
