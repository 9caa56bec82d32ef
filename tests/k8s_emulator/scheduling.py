"""The "cluster is full" switch: no room for new pods until the cluster autoscaler adds a node.

Owns the switch tests flip (`emulator.scheduling.delay = S`, also reachable as
`emulator.kubelet.scheduling`) and what it means to the scheduler: from the moment it is set,
every node that already exists counts as short of cpu for every pod created afterwards
(whatever it requests, as though other workloads had filled the nodes; preemption cannot
free that room), so such pods are left Pending / Unschedulable by the real scheduler with
its real message. The first of them the scheduler cannot place makes the autoscaler add a
node like the first one `delay` seconds later; pods are then placed on it. `delay=None`:
no node is ever added; `0`: the switch is off. Never schedules anything itself.
"""

from __future__ import annotations

from collections.abc import Callable

from . import resources as r
from .meta import JSON, meta
from .store import Store


class Scheduling:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._delay: float | None = 0.0
        self._before: frozenset[str] = frozenset()  # uids of the pods and nodes existing then
        # Bumped at each flip, so a node addition planned under an older setting is dropped.
        self.generation = 0
        # The scheduler's hook: look again at pending pods when the switch flips.
        self.changed: Callable[[], None] = lambda: None

    @property
    def delay(self) -> float | None:
        """Seconds until the autoscaler adds a node once a pod waits for one; None: never."""
        return self._delay

    @delay.setter
    def delay(self, value: float | None) -> None:
        self._delay = value
        self.generation += 1
        self._before = frozenset(
            str(meta(o).get("uid")) for rt in (r.PODS, r.NODES) for o in self._store.items(rt)
        ) if self.active else frozenset()
        self.changed()

    @property
    def active(self) -> bool:
        return self._delay is None or self._delay > 0

    def holds(self, pod: JSON, node: JSON) -> bool:
        """Whether `node` has no room for `pod` because of the switch."""
        return (self.active and str(meta(pod).get("uid")) not in self._before
                and str(meta(node).get("uid")) in self._before)
