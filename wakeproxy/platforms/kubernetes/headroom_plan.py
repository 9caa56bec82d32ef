"""How much room to hold for wakes, and the placeholder Deployment that holds it.

An app's pod asks for the sum of its containers' requests (a container with limits only
asks for its limits, as the API server defaults them), or an init container's if larger:
what the scheduler must find on one node. Sized from the apps, the headroom is room for
the `apps` largest sleeping apps (by a pod's CPU, then memory), each with as many pods as
it wakes with; awake apps hold their room already. Every placeholder has one shape, the
largest of those apps' pods, so whichever of them wakes, evicting one placeholder frees
enough on its node (a Deployment's pods all share one template). Fixed totals are split
into `pods` equal placeholders.

Placeholders are pause containers at the headroom PriorityClass (below every app), with
requests equal to limits, no service account token, no privileges, no grace period: the
scheduler evicts them at once to place a woken app's pod, and their Deployment puts the
evicted one back as Pending, which is what asks a cluster autoscaler for a node.
Pure functions: no I/O.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass

from wakeproxy.model.quantity import cpu_millis, format_cpu, format_memory, memory_bytes
from wakeproxy.platforms.kubernetes.annotations import MANAGED_BY
from wakeproxy.platforms.kubernetes.api import JSON
from wakeproxy.settings import Headroom

NAME = "wakeproxy-headroom"  # the Deployment's name (k8s/rbac.yaml names it)
LABEL = "wakeproxy.io/headroom"  # "true" on the Deployment and its pods
SPEC_ANNOTATION = "wakeproxy.io/headroom-spec"  # a digest of what was last applied
# Placeholders run as pause's own unprivileged user (65535), given by number so the
# kubelet can check runAsNonRoot without reading the image.
_NOBODY = 65535


@dataclass(frozen=True, slots=True, order=True)
class Shape:
    """One pod's requests: millicores and bytes."""

    cpu: int = 0
    memory: int = 0

    def __bool__(self) -> bool:
        return self.cpu > 0 or self.memory > 0


@dataclass(frozen=True, slots=True)
class Sleeper:
    """A sleeping app and the room its wake needs."""

    app: str
    shape: Shape
    replicas: int


@dataclass(frozen=True, slots=True)
class Slots:
    """`pods` placeholders of `shape`, held for `apps` (empty with fixed totals)."""

    pods: int
    shape: Shape
    apps: tuple[str, ...] = ()


def _requests(container: JSON) -> Shape:
    resources = container.get("resources") or {}
    asked = resources.get("requests") or {}
    capped = resources.get("limits") or {}
    cpu, memory = asked.get("cpu", capped.get("cpu")), asked.get("memory", capped.get("memory"))
    try:
        return Shape(cpu_millis(cpu) if cpu is not None else 0,
                     memory_bytes(memory) if memory is not None else 0)
    except ValueError:
        return Shape()  # the API server refuses such a pod: it will never need room


def pod_shape(deployment: JSON | None) -> Shape:
    """What one pod of the Deployment asks the scheduler for."""
    spec = ((((deployment or {}).get("spec") or {}).get("template") or {}).get("spec")) or {}
    running = [_requests(c) for c in spec.get("containers") or [] if isinstance(c, dict)]
    total = Shape(sum(s.cpu for s in running), sum(s.memory for s in running))
    for c in spec.get("initContainers") or []:
        if isinstance(c, dict):
            first = _requests(c)
            total = Shape(max(total.cpu, first.cpu), max(total.memory, first.memory))
    return total


def plan(settings: Headroom, sleepers: Iterable[Sleeper]) -> Slots:
    """The placeholders to hold now."""
    if settings.fixed:
        pods = settings.pods
        return Slots(pods, Shape(math.ceil((settings.cpu_millis or 0) / pods),
                                 math.ceil((settings.memory_bytes or 0) / pods)))
    ranked = sorted((s for s in sleepers if s.shape and s.replicas > 0),
                    key=lambda s: (-s.shape.cpu, -s.shape.memory, s.app))
    chosen = ranked[:settings.apps]
    if not chosen:
        return Slots(0, Shape())
    shape = Shape(max(s.shape.cpu for s in chosen), max(s.shape.memory for s in chosen))
    return Slots(sum(s.replicas for s in chosen), shape, tuple(s.app for s in chosen))


def manifest(settings: Headroom, namespace: str, replicas: int, shape: Shape) -> JSON:
    """The placeholder Deployment, with a digest of itself in SPEC_ANNOTATION."""
    labels = {LABEL: "true", "app.kubernetes.io/name": NAME,
              "app.kubernetes.io/component": "headroom",
              "app.kubernetes.io/part-of": "wakeproxy",
              MANAGED_BY: "wakeproxy"}
    size: JSON = {}
    if shape.cpu:
        size["cpu"] = format_cpu(shape.cpu)
    if shape.memory:
        size["memory"] = format_memory(shape.memory)
    doc: JSON = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "revisionHistoryLimit": 1,
            # Old placeholders go before new ones come: a resize must not ask for room
            # twice (and a cluster autoscaler for a node it would not keep).
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {LABEL: "true"}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": settings.priority_class,
                    "terminationGracePeriodSeconds": 0,
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True, "runAsUser": _NOBODY, "runAsGroup": _NOBODY,
                        "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "pause", "image": settings.image,
                        "resources": {"requests": size, "limits": size},
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "readOnlyRootFilesystem": True},
                    }],
                },
            },
        },
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]
    doc["metadata"]["annotations"] = {SPEC_ANNOTATION: digest}
    return doc


def applied_digest(deployment: JSON | None) -> str | None:
    """The digest of what was last applied to the Deployment, as it says."""
    notes = ((deployment or {}).get("metadata") or {}).get("annotations") or {}
    value = notes.get(SPEC_ANNOTATION)
    return str(value) if value else None
