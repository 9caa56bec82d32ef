"""The emulator's knobs, fixed when it starts.

Owns the one frozen settings object; every other module receives the values it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .install import K8S_DIR
from .nodes import NodeSpec


@dataclass(frozen=True)
class EmulatorConfig:

    # Schemas of this Kubernetes version validate every stored object (None: no validation).
    kube_version: str | None = "1.36"
    # The oldest version wakeproxy supports: what its API server would drop (a field it
    # does not know) is refused too, unless the object also carries that version's
    # fallback (the AppArmor annotation for appArmorProfile). None: not checked.
    oldest_kube_version: str | None = "1.29"
    # Events kept per resource type for watch resumes; older ones are compacted (410 Gone).
    history_size: int = 1000
    bookmark_interval: float = 1.0
    # A watch without timeoutSeconds ends after this long (the real server: 30-60 minutes).
    watch_timeout: float = 1800.0
    # HTTPS with a throwaway CA (needed for in-cluster config) instead of plain HTTP.
    tls: bool = False
    # Requests without a known bearer token are 401 Unauthorized.
    require_token: bool = True
    # The project's manifests (built with `kubectl kustomize`): their Namespaces are created
    # with their labels and their RBAC decides what wakeproxy's ServiceAccount token may do
    # (the admin token may do anything). None: no install, and no RBAC enforcement.
    install_dir: Path | None = K8S_DIR
    # Pods are checked against their namespace's `pod-security.kubernetes.io/enforce` level.
    pod_security: bool = True
    # The kubelet resolves each image's registry host as a node does: cluster DNS names
    # (`*.svc`, `*.cluster.local`) fail with ErrImagePull and the pod never starts.
    image_pulls: bool = True
    namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
    # The cluster's nodes (`NodeSpec(name, cpu=, memory=, pods=)`); None: one node named
    # `node_name` with room enough for any test (8 cpu, 16Gi, 110 pods).
    nodes: tuple[NodeSpec, ...] | list[NodeSpec] | None = None
    node_name: str = "emulator-node"
    # Pod and Service changes show in EndpointSlices this long after they happen.
    endpoint_publish_delay: float = 0.0
    probe_interval: float = 0.05
    ready_probe_interval: float = 0.5
    restart_backoff: float = 0.2
    # terminationGracePeriodSeconds is honoured up to this many seconds (keeps tests fast).
    max_grace_seconds: float = 2.0

    @property
    def node_specs(self) -> tuple[NodeSpec, ...]:
        return tuple(self.nodes) if self.nodes is not None else (NodeSpec(self.node_name),)
