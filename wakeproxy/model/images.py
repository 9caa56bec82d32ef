"""Image references as container runtimes read them, and which registries nodes can reach.

A node's container runtime pulls with the node's DNS, not the cluster's: a registry named
by a Service (`*.svc`, `*.svc.cluster.local`, any `*.cluster.local`, or a bare Service
name) resolves inside pods but not for the kubelet. Builds push from a pod, so they may use
such a name; what a Deployment carries must be a name nodes resolve (`localhost:30500`
through a NodePort, a real DNS name, an IP address).
"""

from __future__ import annotations

import ipaddress

DEFAULT_REGISTRY = "docker.io"


def registry_host(image: str) -> str:
    """host[:port] of an image reference: its first component when that names a host
    (has a `.` or `:`, or is `localhost`), else docker.io."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return DEFAULT_REGISTRY


def _hostname(host: str) -> str:
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def nodes_resolve(host: str) -> bool:
    """Whether a node's DNS can resolve registry `host[:port]`."""
    name = _hostname(host).lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost":
        return True
    labels = name.split(".")
    if "svc" in labels or name == "cluster.local" or name.endswith(".cluster.local"):
        return False
    return len(labels) > 1


def repository(image: str) -> str:
    """The reference without its tag or digest (`host/path`)."""
    name = image.partition("@")[0]
    last = name.rsplit("/", 1)
    if ":" in last[-1]:
        name = name[: len(name) - len(last[-1])] + last[-1].partition(":")[0]
    return name


def moved(image: str, registry: str, to: str) -> str:
    """`image` with its leading `registry/` replaced by `to/` (unchanged if elsewhere)."""
    if not image.startswith(registry + "/"):
        return image
    return to + image[len(registry):]
