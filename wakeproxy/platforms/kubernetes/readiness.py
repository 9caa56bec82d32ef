"""How to tell that a starting pod of an app serves: the probe a wake runs against it.

A pod is listed in its EndpointSlice (not ready) as soon as it has an address, long before
its image is pulled or its app is up; a wake probes it directly, so it need not wait for
the kubelet's next probe and the slice's update, but it must ask what the kubelet asks:

- `wakeproxy.io/readiness-path` set: HTTP GET of that path, ready below 500 (as on the
  local platform);
- else the serving container's readinessProbe: `httpGet` (path, port, scheme, headers;
  ready on 200-399, as the kubelet counts), `tcpSocket` (a connect), or anything else
  (`exec`, `grpc`) we cannot run from here: wait for the slice to say ready;
- no readinessProbe: a TCP connect to the serving port.

The serving container is the one whose ports hold the app's `wakeproxy.io/port` (the only
one if there is one). A probe port that names the serving port is probed where requests
go (the slice's port); another port is probed by its number on the pod. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from wakeproxy.platforms.kubernetes.annotations import AppSpec
from wakeproxy.platforms.kubernetes.api import JSON

_KUBELET_OK = range(200, 400)
_PATH_OK = range(100, 500)


@dataclass(frozen=True, slots=True)
class ProbePlan:
    kind: str  # "tcp" | "http" | "slice" (no direct probe: wait for the slice's ready)
    port: int | None = None  # None: the endpoint's own (serving) port
    path: str = "/"
    tls: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    ok: range = _KUBELET_OK


TCP = ProbePlan("tcp")


def probe_plan(spec: AppSpec, deployment: JSON | None) -> ProbePlan:
    if spec.policy.readiness_path is not None:
        return ProbePlan("http", path=spec.policy.readiness_path, ok=_PATH_OK)
    container = _serving_container(deployment, spec.port)
    if container is None:
        return TCP
    probe = container.get("readinessProbe")
    if not isinstance(probe, dict):
        return TCP
    http = probe.get("httpGet")
    if isinstance(http, dict):
        headers = tuple((str(h.get("name")), str(h.get("value", "")))
                        for h in http.get("httpHeaders") or []
                        if isinstance(h, dict) and h.get("name"))
        path = str(http.get("path") or "/")
        return ProbePlan("http", port=_probe_port(http.get("port"), spec.port, container),
                         path=path if path.startswith("/") else f"/{path}",
                         tls=str(http.get("scheme") or "HTTP").upper() == "HTTPS",
                         headers=headers)
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        return ProbePlan("tcp", port=_probe_port(tcp.get("port"), spec.port, container))
    return ProbePlan("slice")


def _ports(container: JSON) -> list[JSON]:
    return [p for p in container.get("ports") or [] if isinstance(p, dict)]


def _serving_container(deployment: JSON | None, port: int | str) -> JSON | None:
    template = ((deployment or {}).get("spec") or {}).get("template") or {}
    containers = [c for c in (template.get("spec") or {}).get("containers") or []
                  if isinstance(c, dict)]
    for container in containers:
        for p in _ports(container):
            if p.get("name") == port or p.get("containerPort") == port:
                return container
    return containers[0] if len(containers) == 1 else None


def _probe_port(probe_port: object, serving: int | str, container: JSON) -> int | None:
    """The probe's port number on the pod, or None when it is the serving port itself."""
    if probe_port == serving:
        return None
    declared = {str(p["name"]): p.get("containerPort") for p in _ports(container)
                if p.get("name")}
    number = declared.get(probe_port) if isinstance(probe_port, str) else probe_port
    if isinstance(probe_port, str) and probe_port.isdigit():
        number = int(probe_port)
    serving_number = declared.get(serving) if isinstance(serving, str) else serving
    if not isinstance(number, int) or number == serving_number:
        return None  # the serving port under another name (or unknown: probe where we send)
    return number
