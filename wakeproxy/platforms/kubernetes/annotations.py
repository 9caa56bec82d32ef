"""A Deployment's labels and annotations → the app it declares, or why it is refused.

The contract users write::

    metadata:
      labels:
        wakeproxy.io/enabled: "true"
      annotations:
        wakeproxy.io/hosts: "shop.example.com, *.shop.example.com"
        wakeproxy.io/port: "http"            # a number, or a port name in the EndpointSlice
        wakeproxy.io/service: "shop"         # optional; default: the Deployment's name
        wakeproxy.io/idle-after: "10m"       # optional; default: `defaults.idle_after`
        wakeproxy.io/wake-timeout: "90s"     # optional; default: `defaults.wake_timeout`
        wakeproxy.io/awake-replicas: "2"     # optional; default: 1
        wakeproxy.io/not-deployed: "why"     # set by the controllers until the first deploy

The app is named `<namespace>.<deployment>` (a namespace has no dots, so the name is
unambiguous and fits in URLs and metric labels). Pure functions: no I/O, no state.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from wakeproxy.model.apps import AppPolicy
from wakeproxy.platforms.kubernetes.api import JSON
from wakeproxy.settings import parse_duration

ENABLED_LABEL = "wakeproxy.io/enabled"
HOSTS = "wakeproxy.io/hosts"
PORT = "wakeproxy.io/port"
SERVICE = "wakeproxy.io/service"
IDLE_AFTER = "wakeproxy.io/idle-after"
WAKE_TIMEOUT = "wakeproxy.io/wake-timeout"
AWAKE_REPLICAS = "wakeproxy.io/awake-replicas"
# An app built from source whose first release is not deployed yet: routed, never woken
# (a request gets 503 with this reason and Retry-After).
NOT_DEPLOYED = "wakeproxy.io/not-deployed"

_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,13}[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class AppSpec:
    """An app declared by a Deployment: where its pods are published and how it behaves."""

    namespace: str
    deployment: str
    service: str  # the `kubernetes.io/service-name` of its EndpointSlices
    port: int | str  # a port number on the pods, or a port name in the slices
    policy: AppPolicy
    created: str  # creationTimestamp: the older Deployment keeps a contested host

    @property
    def name(self) -> str:
        return self.policy.name


def app_name(namespace: str, deployment: str) -> str:
    return f"{namespace}.{deployment}"


def desired_replicas(deployment: JSON) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    return value if isinstance(value, int) and not isinstance(value, bool) else 1


def host_pattern(text: str) -> str:
    """`shop.example.com` or `*.example.com`, lower-cased; raises ValueError otherwise."""
    p = text.strip().lower().rstrip(".")
    labels = p[2:].split(".") if p.startswith("*.") else p.split(".")
    if not p or not all(_LABEL.match(label) for label in labels):
        raise ValueError(text)
    return p


def parse_deployment(obj: JSON, defaults: AppPolicy) -> AppSpec | str:
    """The app `obj` declares, or the reason it is refused (naming the annotation)."""
    meta = obj.get("metadata") or {}
    namespace = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    notes = meta.get("annotations") or {}
    problems: list[str] = []

    def bad(key: str, expected: str) -> None:
        problems.append(f"{key}: expected {expected}, got {notes.get(key)!r}")

    hosts: list[str] = []
    raw_hosts = notes.get(HOSTS)
    if not isinstance(raw_hosts, str) or not raw_hosts.strip():
        bad(HOSTS, "a comma-separated list of host names or *.domain wildcards")
    else:
        try:
            hosts = [host_pattern(h) for h in raw_hosts.split(",") if h.strip()]
            if not hosts:
                raise ValueError(raw_hosts)
        except ValueError:
            bad(HOSTS, "a comma-separated list of host names or *.domain wildcards")
    port: int | str = 0
    raw_port = str(notes.get(PORT) or "").strip()
    if raw_port.isdigit() and 1 <= int(raw_port) <= 65535:
        port = int(raw_port)
    elif _PORT_NAME.match(raw_port) and not raw_port.isdigit():
        port = raw_port
    else:
        bad(PORT, "a port number or the name of a port in the EndpointSlice")
    service = str(notes.get(SERVICE) or name).strip()
    if not _DNS_LABEL.match(service):
        bad(SERVICE, "a Service name")
    changes: dict[str, Any] = {}
    for key, field in ((IDLE_AFTER, "idle_after"), (WAKE_TIMEOUT, "wake_timeout")):
        if key in notes:
            try:
                seconds = parse_duration(notes[key])
                if seconds <= 0:
                    raise ValueError(seconds)
                changes[field] = seconds
            except ValueError:
                bad(key, "a duration above zero like 30s or 5m")
    if AWAKE_REPLICAS in notes:
        raw = str(notes[AWAKE_REPLICAS]).strip()
        if raw.isdigit() and int(raw) >= 1:
            changes["awake_replicas"] = int(raw)
        else:
            bad(AWAKE_REPLICAS, "a whole number of replicas above 0")
    if NOT_DEPLOYED in notes:
        changes["unavailable"] = str(notes[NOT_DEPLOYED]).strip() or "no release deployed yet"
    if problems:
        return "; ".join(problems)
    policy = dataclasses.replace(
        defaults, name=app_name(namespace, name), hosts=tuple(hosts), **changes)
    return AppSpec(namespace, name, service, port, policy, str(meta.get("creationTimestamp") or ""))
