"""Whether a pod fits a node, with the reasons the real scheduler's filter plugins give.

Owns the snapshot one scheduling pass works on (`NodeInfo`: a node, its allocatable and the
pods bound to it that have not terminated — terminating ones still hold their room until
they are gone), and the filters in the order kube-scheduler runs them, stopping at the
first that fails: NodeUnschedulable (`node(s) were unschedulable`, a cordon),
TaintToleration (`node(s) had untolerated taint {key: value}`, NoSchedule and NoExecute), the
nodeSelector (`node(s) didn't match Pod's node affinity/selector`), none of which
preemption can help, then NodeResourcesFit (`Too many pods`, `Insufficient cpu`,
`Insufficient memory`, `Insufficient <resource>`), counting the pods nominated to the node
with at least the pod's priority. Pure: never writes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .meta import JSON, dig, labels_of, meta
from .pod_resources import Amounts, allocatable, pod_requests

UNSCHEDULABLE = "node(s) were unschedulable"
SELECTOR = "node(s) didn't match Pod's node affinity/selector"
TOO_MANY_PODS = "Too many pods"
_ORDER = ("cpu", "memory", "ephemeral-storage")
# What a cordoned node counts as, for tolerations.
_CORDON = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


def priority_of(pod: JSON) -> int:
    return int(dig(pod, "spec", "priority") or 0)


def is_terminal(pod: JSON) -> bool:
    return dig(pod, "status", "phase") in ("Succeeded", "Failed")


@dataclass
class NodeInfo:
    node: JSON
    pods: list[JSON] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(meta(self.node).get("name"))

    @property
    def allocatable(self) -> Amounts:
        return allocatable(self.node)


@dataclass(frozen=True)
class Verdict:
    reasons: tuple[str, ...] = ()
    # No eviction can make room (a cordon, a selector, the "cluster is full" switch).
    unresolvable: bool = False

    @property
    def fits(self) -> bool:
        return not self.reasons


def insufficient(wanted: Amounts, room: Amounts, pods: Iterable[JSON]) -> tuple[str, ...]:
    """NodeResourcesFit: the pod count, then each resource the pod asks for."""
    listed = list(pods)
    used: Amounts = {}
    for pod in listed:
        for name, amount in pod_requests(pod).items():
            used[name] = used.get(name, 0) + amount
    reasons = []
    if len(listed) + 1 > room.get("pods", 0):
        reasons.append(TOO_MANY_PODS)
    names = [n for n in _ORDER if n in wanted] + sorted(n for n in wanted if n not in _ORDER)
    for name in names:
        if wanted[name] > 0 and wanted[name] > room.get(name, 0) - used.get(name, 0):
            reasons.append(f"Insufficient {name}")
    return tuple(reasons)


def _tolerates(pod: JSON, taint: JSON) -> bool:
    for t in dig(pod, "spec", "tolerations") or []:
        if t.get("effect") not in (None, "", taint.get("effect")):
            continue
        if (t.get("operator") or "Equal") == "Exists":
            if t.get("key") in (None, "", taint.get("key")):
                return True
        elif t.get("key") == taint.get("key") and (t.get("value") or "") == (
                taint.get("value") or ""):
            return True
    return False


def static_verdict(pod: JSON, node: JSON) -> Verdict | None:
    """The filters before resources: a Verdict when one fails, else None."""
    if dig(node, "spec", "unschedulable") and not _tolerates(pod, _CORDON):
        return Verdict((UNSCHEDULABLE,), unresolvable=True)
    for taint in dig(node, "spec", "taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(pod, taint):
            return Verdict((f"node(s) had untolerated taint {{{taint.get('key')}: "
                            f"{taint.get('value') or ''}}}",), unresolvable=True)
    selector = dig(pod, "spec", "nodeSelector") or {}
    labels = labels_of(node)
    if any(labels.get(k) != v for k, v in selector.items()):
        return Verdict((SELECTOR,), unresolvable=True)
    return None


def verdict(pod: JSON, info: NodeInfo, nominated: Iterable[JSON] = ()) -> Verdict:
    """Does `pod` fit `info`'s node next to its pods and the pods nominated there?"""
    static = static_verdict(pod, info.node)
    if static is not None:
        return static
    return Verdict(insufficient(pod_requests(pod), info.allocatable,
                                [*info.pods, *nominated]))


def kubelet_rejection(pod: JSON, node: JSON, admitted: list[JSON]) -> tuple[str, str] | None:
    """The kubelet's own admission of a pod bound to its node (one placed by a client's
    `spec.nodeName` never met the scheduler): (reason, message) when it does not fit next
    to the pods it already runs there."""
    wanted, room = pod_requests(pod), allocatable(node)
    used: Amounts = {}
    for other in admitted:
        for name, amount in pod_requests(other).items():
            used[name] = used.get(name, 0) + amount
    short = [("pods", 1, len(admitted))] + [
        (name, wanted[name], used.get(name, 0)) for name in _ORDER if wanted.get(name)] + [
        (name, amount, used.get(name, 0)) for name, amount in sorted(wanted.items())
        if name not in _ORDER and amount]
    for name, asked, taken in short:
        if asked > room.get(name, 0) - taken:
            return (f"OutOf{name}", f"Pod was rejected: Node didn't have enough resource: "
                    f"{name}, requested: {asked}, used: {taken}, capacity: {room.get(name, 0)}")
    return None
