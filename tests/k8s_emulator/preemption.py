"""Which pods to evict so a pending pod fits: the default preemption plugin's choice.

Owns, for a pod that fits no node: whether it may preempt at all (not with
`preemptionPolicy: Never`; not while lower-priority pods on its nominated node are still
terminating — it waits for them), and per node the victims: every pod of strictly lower
priority removed, the pod must then fit (next to the pods nominated there with at least
its priority); the most important of them (higher priority, then started earlier) are
given back one by one as long as the pod still fits. Among the nodes that work, the one
whose most important victim has the lowest priority, then the lowest sum of priorities
(which favours fewer victims), then the fewest victims, then the latest start of its most
important victims, then the first. PodDisruptionBudgets are not considered. Also the
per-node outcome in the scheduler's words for the message. Pure: never writes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .fit import NodeInfo, insufficient, is_terminal, priority_of, static_verdict
from .meta import JSON, dig, is_terminating, meta
from .pod_resources import pod_requests

NO_VICTIMS = "No preemption victims found for incoming pod"
NOT_HELPFUL = "Preemption is not helpful for scheduling"
NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING = "not eligible due to a terminating pod on the nominated node."
_INT32_OFFSET = 2**31


@dataclass(frozen=True)
class Candidate:
    node: str
    victims: tuple[JSON, ...]


@dataclass(frozen=True)
class Outcome:
    candidate: Candidate | None
    # The reason preemption did not help, in the scheduler's words ("" when it did).
    message: str
    # Not eligible now: a nomination the pod already has stands (else it is cleared).
    keep_nomination: bool = False


def _started(pod: JSON) -> str:
    return str(dig(pod, "status", "startTime") or meta(pod).get("creationTimestamp") or "")


def eligible(pod: JSON, nodes: dict[str, NodeInfo]) -> str | None:
    """Why the pod may not preempt now (None: it may)."""
    if dig(pod, "spec", "preemptionPolicy") == "Never":
        return NEVER
    nominated = nodes.get(str(dig(pod, "status", "nominatedNodeName") or ""))
    if nominated is not None and static_verdict(pod, nominated.node) is None:
        prio = priority_of(pod)
        if any(is_terminating(p) and priority_of(p) < prio for p in nominated.pods):
            return TERMINATING
    return None


def victims_on(pod: JSON, info: NodeInfo, nominated: Sequence[JSON]) -> tuple[JSON, ...] | None:
    """The fewest, least important pods to evict from `info` for `pod` to fit; None if even
    evicting every lower-priority pod is not enough."""
    wanted, room, prio = pod_requests(pod), info.allocatable, priority_of(pod)
    lower = [p for p in info.pods if priority_of(p) < prio and not is_terminal(p)]
    kept = [p for p in info.pods if p not in lower]
    if insufficient(wanted, room, [*kept, *nominated]):
        return None
    lower.sort(key=lambda p: (-priority_of(p), _started(p)))
    victims = []
    for candidate in lower:
        if insufficient(wanted, room, [*kept, candidate, *nominated]):
            victims.append(candidate)
        else:
            kept.append(candidate)
    return tuple(victims)


def _rank(candidate: Candidate) -> tuple[int, int, int, str]:
    victims = candidate.victims
    if not victims:
        return (-_INT32_OFFSET - 1, 0, 0, "")
    top = max(priority_of(v) for v in victims)
    total = sum(priority_of(v) + _INT32_OFFSET for v in victims)
    earliest_top = min(_started(v) for v in victims if priority_of(v) == top)
    # The latest start wins: negate by sorting on the inverted string below.
    return (top, total, len(victims), earliest_top)


def pick(candidates: Sequence[Candidate]) -> Candidate:
    best = min(_rank(c)[:3] for c in candidates)
    tied = [c for c in candidates if _rank(c)[:3] == best]
    latest = max(_rank(c)[3] for c in tied)
    return next(c for c in tied if _rank(c)[3] == latest)


def preempt(pod: JSON, nodes: dict[str, NodeInfo],
            nominated_for: Callable[[JSON, str], Sequence[JSON]],
            hopeless: dict[str, str]) -> Outcome:
    """Find victims for `pod` over every node (`hopeless`: nodes where no eviction can
    help, with the reason to report: NOT_HELPFUL or NO_VICTIMS)."""
    why = eligible(pod, nodes)
    if why is not None:
        return Outcome(None, f"preemption: {why}", keep_nomination=True)
    candidates = []
    counts: dict[str, int] = {}
    for name, info in nodes.items():
        found = None if name in hopeless else victims_on(pod, info, nominated_for(pod, name))
        if found is None:
            reason = hopeless.get(name, NO_VICTIMS)
            counts[reason] = counts.get(reason, 0) + 1
            continue
        candidates.append(Candidate(name, found))
    if candidates:
        return Outcome(pick(candidates), "")
    histogram = ", ".join(sorted(f"{n} {reason}" for reason, n in counts.items()))
    return Outcome(None, f"preemption: 0/{len(nodes)} nodes are available: {histogram}.")
