"""kube-scheduler: binds pending pods to nodes with room, preempting lower-priority pods.

Owns: the pods waiting for a node (no `spec.nodeName`, `schedulerName: default-scheduler`,
not terminating), taken in priority order (higher first, then older); for each, the filters
of fit.py on every node, then binding to the feasible node with the most room left (its
nominated node first) through `pods/binding` — `spec.nodeName`, condition PodScheduled
True, a Normal `Scheduled` Event. A pod that fits nowhere gets condition PodScheduled False
/ Unschedulable with the real message (`0/2 nodes are available: 2 Insufficient cpu.
preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.`) and
a Warning `FailedScheduling` Event; then preemption (preemption.py): the victims get
condition DisruptionTarget (reason PreemptionByScheduler) and a `Preempted` Event and are
deleted gracefully, the pod gets `status.nominatedNodeName` until they are gone, and
lower-priority pods nominated to that node lose their nomination. A
pass runs again whenever room may have changed: a pod added, bound, finished, deleted or
nominated, a node added or changed, the "cluster is full" switch flipped (scheduling.py,
whose autoscaler node this controller asks for). Never runs processes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

from . import events
from . import resources as r
from .controller import Controller
from .fit import NodeInfo, Verdict, is_terminal, priority_of, verdict
from .history import Event
from .meta import JSON, deep, dig, format_time, is_terminating, meta
from .pod_resources import pod_requests
from .preemption import NO_VICTIMS, NOT_HELPFUL, preempt
from .scheduling import Scheduling
from .store import Store

NAME = "default-scheduler"
_PASS = "pass"
_AUTOSCALE = "autoscale"
# What the scorer assumes for a container that asks for nothing (the real non-zero defaults).
_DEFAULT_CPU = 100
_DEFAULT_MEMORY = 200 * 2**20


class Scheduler(Controller):
    name = NAME
    watches = (r.PODS, r.NODES)

    def __init__(self, store: Store, errors: list[BaseException], *, switch: Scheduling,
                 add_node: Callable[[], None]) -> None:
        super().__init__(store, errors)
        self.switch = switch
        switch.changed = lambda: self.enqueue(_PASS)
        self._add_node = add_node
        self._autoscaling: int | None = None  # the switch generation a node is coming for
        self._arrivals: dict[str, int] = {}  # pod uid → order first seen (queue order)
        self._counter = itertools.count()

    def keys_for(self, event: Event) -> Iterable[Hashable]:
        if (event.obj.get("kind") == "Node" or event.type != "MODIFIED"
                or _signature(event.obj) != _signature(event.old or {})):
            yield _PASS

    async def reconcile(self, key: Hashable) -> None:
        if isinstance(key, tuple) and key[0] == _AUTOSCALE:
            if key[1] == self.switch.generation == self._autoscaling:
                self._autoscaling = None
                self._add_node()
            return
        self._pass()

    # -- one pass over the pending pods --------------------------------------------------------
    def _pass(self) -> None:
        nodes = {str(meta(n)["name"]): NodeInfo(n) for n in self.store.items(r.NODES)
                 if not is_terminating(n)}
        pending: list[JSON] = []
        for pod in self.store.items(r.PODS):
            bound = dig(pod, "spec", "nodeName")
            if bound:
                if bound in nodes and not is_terminal(pod):
                    nodes[bound].pods.append(pod)
            elif (not is_terminating(pod) and not is_terminal(pod)
                  and (dig(pod, "spec", "schedulerName") or NAME) == NAME):
                pending.append(pod)
        live = {str(meta(p)["uid"]) for p in pending}
        self._arrivals = {u: n for u, n in self._arrivals.items() if u in live}
        pending.sort(key=lambda p: (-priority_of(p), str(meta(p).get("creationTimestamp")),
                                    self._arrival(p)))
        nominated: dict[str, list[JSON]] = {}
        for pod in pending:
            where = dig(pod, "status", "nominatedNodeName")
            if where:
                nominated.setdefault(str(where), []).append(pod)
        for pod in pending:
            self._schedule(pod, nodes, nominated)

    def _arrival(self, pod: JSON) -> int:
        uid = str(meta(pod)["uid"])
        if uid not in self._arrivals:
            self._arrivals[uid] = next(self._counter)
        return self._arrivals[uid]

    def _schedule(self, pod: JSON, nodes: dict[str, NodeInfo],
                  nominated: dict[str, list[JSON]]) -> None:
        uid = meta(pod)["uid"]

        def nominated_for(p: JSON, node: str) -> Sequence[JSON]:
            # Pods waiting for room on `node` that matter as much or more than `p`.
            return [o for o in nominated.get(node, [])
                    if meta(o)["uid"] != meta(p)["uid"] and priority_of(o) >= priority_of(p)]

        verdicts: dict[str, Verdict] = {}
        hopeless: dict[str, str] = {}
        for name, info in nodes.items():
            if self.switch.holds(pod, info.node):
                verdicts[name] = Verdict(("Insufficient cpu",), unresolvable=True)
                hopeless[name] = NO_VICTIMS
                continue
            verdicts[name] = verdict(pod, info, nominated_for(pod, name))
            if verdicts[name].unresolvable:
                hopeless[name] = NOT_HELPFUL
        _forget_nomination(nominated, uid)
        feasible = [name for name, v in verdicts.items() if v.fits]
        if feasible:
            mine = dig(pod, "status", "nominatedNodeName")
            target = mine if mine in feasible else max(
                feasible, key=lambda n: (_room_left(pod, nodes[n]), -feasible.index(n)))
            bound = self._bind(pod, target)
            nodes[target].pods.append(bound)
            return
        if not nodes:
            self._unschedulable(pod, "no nodes available to schedule pods", keep=True)
            return
        message = _fit_error(len(nodes), verdicts.values())
        outcome = preempt(pod, nodes, nominated_for, hopeless)
        if outcome.candidate is not None:
            for victim in outcome.candidate.victims:
                self._evict(victim, pod, outcome.candidate.node)
            self._unnominate_lower(pod, outcome.candidate.node, nominated)
            nominated.setdefault(outcome.candidate.node, []).append(pod)
            self._unschedulable(pod, message, nominate=outcome.candidate.node)
        else:
            self._unschedulable(pod, f"{message} {outcome.message}",
                                keep=outcome.keep_nomination)
            mine = dig(pod, "status", "nominatedNodeName")
            if outcome.keep_nomination and mine:
                nominated.setdefault(str(mine), []).append(pod)
        if any(self.switch.holds(pod, info.node) for info in nodes.values()):
            self._plan_autoscale()

    # -- writes ----------------------------------------------------------------------------------
    def _bind(self, pod: JSON, node: str) -> JSON:
        ns, name = str(meta(pod)["namespace"]), str(meta(pod)["name"])

        def bind(p: JSON) -> None:
            p.setdefault("spec", {})["nodeName"] = node
            status = p.setdefault("status", {})
            status.pop("nominatedNodeName", None)
            _set_condition(status, {"type": "PodScheduled", "status": "True"})

        bound = self.store.mutate(r.PODS, ns, name, bind, subresource="binding")
        events.record(self.store, pod, reason="Scheduled", component=NAME, warning=False,
                      message=f"Successfully assigned {ns}/{name} to {node}")
        return bound

    def _unschedulable(self, pod: JSON, message: str, *, nominate: str | None = None,
                       keep: bool = False) -> None:
        ns, name = str(meta(pod)["namespace"]), str(meta(pod)["name"])
        status = deep(pod.get("status") or {})
        _set_condition(status, {"type": "PodScheduled", "status": "False",
                                "reason": "Unschedulable", "message": message})
        if nominate is not None:
            status["nominatedNodeName"] = nominate
        elif not keep:
            status.pop("nominatedNodeName", None)
        if status == pod.get("status"):
            return  # nothing new: the real scheduler retries quietly until room changes

        def change(p: JSON) -> None:
            p["status"] = status

        self.store.mutate(r.PODS, ns, name, change, subresource="status")
        events.record(self.store, pod, reason="FailedScheduling", message=message,
                      component=NAME)

    def _evict(self, victim: JSON, preemptor: JSON, node: str) -> None:
        ns, name = str(meta(victim)["namespace"]), str(meta(victim)["name"])
        if is_terminating(victim):
            return

        def disrupt(p: JSON) -> None:
            _set_condition(p.setdefault("status", {}), {
                "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                "message": f"{NAME}: preempting to accommodate a higher priority pod"})

        self.store.mutate(r.PODS, ns, name, disrupt, subresource="status")
        events.record(self.store, victim, reason="Preempted", component=NAME, warning=False,
                      message=f"Preempted by pod {meta(preemptor)['uid']} on node {node}")
        self.store.delete(r.PODS, ns, name)

    def _unnominate_lower(self, pod: JSON, node: str,
                          nominated: dict[str, list[JSON]]) -> None:
        """Pods of lower priority nominated to `node` may no longer fit there: their
        nomination is cleared so they look for room anew (as the preemption plugin does)."""
        for other in [o for o in nominated.get(node, []) if priority_of(o) < priority_of(pod)]:
            nominated[node].remove(other)

            def clear(p: JSON) -> None:
                p.setdefault("status", {}).pop("nominatedNodeName", None)

            self.store.mutate(r.PODS, str(meta(other)["namespace"]), str(meta(other)["name"]),
                              clear, subresource="status")
            clear(other)  # this pass's copy too, read again when its turn comes

    def _plan_autoscale(self) -> None:
        delay = self.switch.delay
        if delay is None or self._autoscaling == self.switch.generation:
            return
        self._autoscaling = self.switch.generation
        self.enqueue((_AUTOSCALE, self.switch.generation), delay)


def _signature(pod: JSON) -> tuple[Any, ...]:
    """What of a pod changes the room on nodes or the queue (not readiness, not restarts)."""
    return (dig(pod, "spec", "nodeName"), is_terminal(pod), is_terminating(pod),
            dig(pod, "status", "nominatedNodeName"))


def _forget_nomination(nominated: dict[str, list[JSON]], uid: str) -> None:
    for pods in nominated.values():
        pods[:] = [p for p in pods if meta(p)["uid"] != uid]


def _set_condition(status: JSON, wanted: JSON) -> None:
    """Add or replace a condition; its transition time moves only when its status does."""
    at = format_time()
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != wanted["type"]]
    old = next((c for c in status.get("conditions") or [] if c.get("type") == wanted["type"]),
               None)
    since = old.get("lastTransitionTime") if old and old.get("status") == wanted["status"] \
        else at
    conditions.append({**wanted, "lastProbeTime": None, "lastTransitionTime": since})
    status["conditions"] = conditions


def _fit_error(count: int, verdicts: Iterable[Verdict]) -> str:
    reasons: dict[str, int] = {}
    for v in verdicts:
        for reason in v.reasons:
            reasons[reason] = reasons.get(reason, 0) + 1
    histogram = ", ".join(sorted(f"{n} {reason}" for reason, n in reasons.items()))
    return f"0/{count} nodes are available: {histogram}."


def _room_left(pod: JSON, info: NodeInfo) -> float:
    """The least-allocated score: the share of cpu and memory left once the pod is placed,
    counting a container that asks for nothing as the real scorer does."""
    room = info.allocatable
    shares = []
    for name, default in (("cpu", _DEFAULT_CPU), ("memory", _DEFAULT_MEMORY)):
        used = sum(pod_requests(p).get(name) or default for p in [*info.pods, pod])
        total = room.get(name, 0)
        shares.append((total - used) / total if total else 0.0)
    return sum(shares) / len(shares)
