"""What a pod asks of a node: its resource requests, summed as the scheduler sums them.

Owns: a pod's effective requests — the regular containers' requests summed (a container
with only limits has had requests defaulted to them at creation, see defaults.py), restartable
init containers (sidecars) added to them, and each other init container counted as the most
it needs while it runs alone (the max), plus `spec.overhead` — in the units the scheduler
compares (cpu in millicores, everything else in whole units); a node's allocatable in the
same units; and the pod's QoS class. Pure functions on JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import quantity
from .meta import JSON, dig

CPU = "cpu"
_QOS_RESOURCES = ("cpu", "memory")
Amounts = dict[str, int]


def amounts(resources: Mapping[str, object] | None) -> Amounts:
    """A ResourceList in scheduler units (cpu millicores, the rest whole units)."""
    out: Amounts = {}
    for name, amount in (resources or {}).items():
        out[str(name)] = quantity.milli(amount) if name == CPU else quantity.value(amount)
    return out


def _add(into: Amounts, more: Mapping[str, int]) -> None:
    for name, amount in more.items():
        into[name] = into.get(name, 0) + amount


def _max(into: Amounts, other: Mapping[str, int]) -> None:
    for name, amount in other.items():
        into[name] = max(into.get(name, 0), amount)


def _requests_of(container: JSON) -> Amounts:
    return amounts(dig(container, "resources", "requests"))


def pod_requests(pod: JSON) -> Amounts:
    spec = pod.get("spec") or {}
    total: Amounts = {}
    for container in spec.get("containers") or []:
        _add(total, _requests_of(container))
    # Init containers run one after the other: the pod needs the most any one of them
    # needs next to the sidecars started before it; sidecars keep running alongside.
    sidecars: Amounts = {}
    peak: Amounts = {}
    for container in spec.get("initContainers") or []:
        own = _requests_of(container)
        if container.get("restartPolicy") == "Always":
            _add(sidecars, own)
            _max(peak, sidecars)
        else:
            running = dict(sidecars)
            _add(running, own)
            _max(peak, running)
    _add(total, sidecars)
    _max(total, peak)
    _add(total, amounts(spec.get("overhead")))
    return total


def allocatable(node: JSON) -> Amounts:
    return amounts(dig(node, "status", "allocatable"))


def qos_class(containers: Iterable[JSON]) -> str:
    """Guaranteed (cpu and memory limits on every container, requests equal), BestEffort
    (no cpu or memory asked anywhere), else Burstable: the API server's rule, which looks
    at cpu and memory only."""
    listed = list(containers)
    asked = False
    guaranteed = bool(listed)
    for c in listed:
        requests = dig(c, "resources", "requests") or {}
        limits = dig(c, "resources", "limits") or {}
        for name in _QOS_RESOURCES:
            if any(name in side and quantity.parse(side[name]) != 0
                   for side in (requests, limits)):
                asked = True
            if name not in limits or quantity.parse(requests.get(name, limits[name])) != \
                    quantity.parse(limits[name]):
                guaranteed = False
    if not asked:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
