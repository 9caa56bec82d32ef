"""Image pulls as a node does them: the registry host is resolved with the node's DNS.

Owns: splitting an image reference into its registry host the way container runtimes do
(`docker.io` when the first path component is not a host: no `.` or `:` and not
`localhost`), and deciding whether a node can reach that host. A node resolves real DNS
names, IP addresses and `localhost`; it does not use the cluster's DNS, so a Service name
(`*.svc`, `*.svc.cluster.local`, any `*.cluster.local`, or a bare Service name with a port)
fails with the error containerd reports. Never pulls anything: there are no images here.
Written apart from wakeproxy's own rule (wakeproxy/model/images.py) on purpose: the test
double judges what a node would do by itself, so a wrong rule in wakeproxy cannot pass.
"""

from __future__ import annotations

import ipaddress

CLUSTER_DOMAIN = "cluster.local"


def registry_host(image: str) -> str:
    """The registry host[:port] of an image reference (`docker.io` by default)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def _hostname(host: str) -> str:
    if host.startswith("["):  # [v6]:port
        return host[1:].partition("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def node_resolves(host: str) -> bool:
    name = _hostname(host).lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    if name == "localhost":
        return True
    labels = name.split(".")
    if "svc" in labels or name == CLUSTER_DOMAIN or name.endswith("." + CLUSTER_DOMAIN):
        return False
    # A single label other than localhost is a Service name only cluster DNS completes.
    return len(labels) > 1


def pull_error(image: str) -> str | None:
    """containerd's error for an image the node cannot pull; None when it can."""
    host = registry_host(image)
    if node_resolves(host):
        return None
    name = _hostname(host)
    return (f'failed to pull and unpack image "{image}": failed to resolve reference '
            f'"{image}": failed to do request: Head "https://{host}/v2/": dial tcp: lookup '
            f"{name}: no such host")
