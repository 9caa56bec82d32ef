"""A Deployment's labels and annotations → the app it declares, or why it is refused.

The contract users write::

    metadata:
      labels:
        wakeproxy.io/enabled: "true"
      annotations:
        wakeproxy.io/hosts: "shop.example.com, *.shop.example.com"
        wakeproxy.io/port: "http"            # a number, or a port name in the EndpointSlice
        wakeproxy.io/service: "shop"         # optional; default: the Deployment's name
        wakeproxy.io/idle-after: "10m"       # optional: any per-app setting of the config
        wakeproxy.io/ignored-paths: "/healthz, /ping"   # file, dashes for underscores
        wakeproxy.io/awake-replicas: "2"     # optional; default: 1

and what wakeproxy writes itself: `wakeproxy.io/replicas-before-sleep` (the count a
scale to zero replaced; a wake restores it), `wakeproxy.io/held-asleep` (an operator's
sleep, until the next wake) and `wakeproxy.io/not-deployed` (set by the controllers
until the first deploy). The per-app settings are read by the config file's
own converters (`settings.POLICY_FIELDS`), so a value means the same in both places; a
list is comma-separated.

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
from wakeproxy.settings import POLICY_FIELDS

ENABLED_LABEL = "wakeproxy.io/enabled"
HOSTS = "wakeproxy.io/hosts"
PORT = "wakeproxy.io/port"
SERVICE = "wakeproxy.io/service"
AWAKE_REPLICAS = "wakeproxy.io/awake-replicas"
# Written with every scale to zero: the count it replaced, which the next wake restores.
REPLICAS_BEFORE_SLEEP = "wakeproxy.io/replicas-before-sleep"
# Written with a scale to zero an operator asked for (`wakeproxy sleep`), removed by the
# next scale-up wakeproxy writes: while it is at zero with this, a never-sleep app is left
# asleep (controlplane/always_awake.py).
HELD_ASLEEP = "wakeproxy.io/held-asleep"
# An app built from source whose first release is not deployed yet: routed, never woken
# (a request gets 503 with this reason and Retry-After).
NOT_DEPLOYED = "wakeproxy.io/not-deployed"
# The next stage of a pipeline: read only on Deployments wakeproxy deploys itself (a
# promotion deploys onto the next stage, which wakeproxy does only for its own apps).
PROMOTE_TO = "wakeproxy.io/promote-to"
# The label on everything wakeproxy's controllers make (value "wakeproxy").
MANAGED_BY = "app.kubernetes.io/managed-by"
# The per-app settings of the config file, by annotation. Not `stop_grace`: the local
# platform's signal timing, which a pod's terminationGracePeriodSeconds replaces.
POLICY_ANNOTATIONS = {f"wakeproxy.io/{key.replace('_', '-')}": key
                      for key in sorted(POLICY_FIELDS) if key != "stop_grace"}
_LISTS = {"ignored_paths"}  # comma-separated in an annotation
# Every annotation the parser reads (the documented table lists exactly these).
ANNOTATIONS = (HOSTS, PORT, SERVICE, *POLICY_ANNOTATIONS, AWAKE_REPLICAS,
               REPLICAS_BEFORE_SLEEP, NOT_DEPLOYED, HELD_ASLEEP)

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
    ignored: tuple[str, ...] = ()  # annotations left unread, each with why (a warning)

    @property
    def name(self) -> str:
        return self.policy.name


def app_name(namespace: str, deployment: str) -> str:
    return f"{namespace}.{deployment}"


def managed_by_wakeproxy(deployment: JSON | None) -> bool:
    """Made and deployed by wakeproxy's controllers (an app of the config file with a
    repo, a review app), not by someone else's tooling."""
    labels = ((deployment or {}).get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == "wakeproxy"


def held_asleep(deployment: JSON | None) -> bool:
    """Put to sleep by an operator and not woken by wakeproxy since."""
    notes = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    return HELD_ASLEEP in notes


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
    ignored: list[str] = []
    for key, field in POLICY_ANNOTATIONS.items():
        if key == PROMOTE_TO and key in notes and not managed_by_wakeproxy(obj):
            ignored.append(f"{PROMOTE_TO} ignored: {namespace}/{name} is not deployed by "
                           "wakeproxy, and wakeproxy promotes only onto and from apps it "
                           "deploys (apps of its config file built from a repo, with "
                           "promote_to there); promote it with the tool that deploys it")
            continue
        if key in notes:
            convert, expected = POLICY_FIELDS[field]
            try:
                changes[field] = convert(_setting(notes[key], list_=field in _LISTS))
            except ValueError:
                bad(key, expected + (" (comma-separated)" if field in _LISTS else ""))
    for key in (AWAKE_REPLICAS, REPLICAS_BEFORE_SLEEP):
        if key in notes:
            raw = str(notes[key]).strip()
            if raw.isdigit() and int(raw) >= 1:
                # A count recorded at the last sleep wins over the declared one: a wake
                # restores what ran before (an HPA's or a person's choice included).
                if key == REPLICAS_BEFORE_SLEEP or "awake_replicas" not in changes:
                    changes["awake_replicas"] = int(raw)
            else:
                bad(key, "a whole number of replicas above 0")
    if NOT_DEPLOYED in notes:
        changes["unavailable"] = str(notes[NOT_DEPLOYED]).strip() or "no release deployed yet"
    if problems:
        return "; ".join(problems)
    policy = dataclasses.replace(
        defaults, name=app_name(namespace, name), hosts=tuple(hosts), **changes)
    return AppSpec(namespace, name, service, port, policy, str(meta.get("creationTimestamp") or ""),
                   tuple(ignored))


def _setting(text: object, *, list_: bool) -> object:
    """An annotation's text as the config file's YAML would have typed the value."""
    raw = str(text).strip()
    if list_:
        return [part.strip() for part in raw.split(",") if part.strip()]
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    if raw.isdigit():
        return int(raw)
    return raw
