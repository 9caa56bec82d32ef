"""Per-resource-type event history and live fan-out to watchers.

Owns the bounded log of ADDED/MODIFIED/DELETED events (like the API server's watch cache: one
per resource type, a fixed capacity, oldest dropped first), the compaction point below which a
resume is 410 Gone, and the subscriber queues of open watches. One writer: the store appends
synchronously in the same step as the write, so a watcher that subscribes and reads the backlog
in one step never misses or duplicates an event. Never filters by selector (watch.py does).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from enum import Enum

from .errors import Gone
from .meta import JSON


@dataclass(frozen=True)
class Event:
    type: str  # ADDED | MODIFIED | DELETED
    rv: int
    obj: JSON
    old: JSON | None = None  # the previous state, for selector transitions


class Control(Enum):
    """Out-of-band orders to open watch streams (fault injection)."""

    END = "end"  # close the stream as a server timeout would
    GONE = "gone"  # send an ERROR 410 event, then close


Item = Event | Control


class Subscription:
    def __init__(
        self, history: History, queue: asyncio.Queue[Item] | None, external: bool
    ) -> None:
        self._history = history
        self.queue: asyncio.Queue[Item] = queue if queue is not None else asyncio.Queue()
        # Internal subscribers (the emulator's controllers) never get fault-injected controls.
        self.external = external

    def close(self) -> None:
        self._history.unsubscribe(self)


class History:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._events: deque[Event] = deque()
        # Events with rv <= compacted_rv may be gone; a watch may resume from >= compacted_rv.
        self.compacted_rv = 0
        self._subscribers: set[Subscription] = set()

    def record(self, event: Event) -> None:
        self._events.append(event)
        while len(self._events) > self.capacity:
            dropped = self._events.popleft()
            self.compacted_rv = max(self.compacted_rv, dropped.rv)
        for sub in list(self._subscribers):
            sub.queue.put_nowait(event)

    def since(self, rv: int) -> list[Event]:
        """Events after `rv`, or Gone when some of them were already compacted away."""
        if rv < self.compacted_rv:
            raise Gone(f"too old resource version: {rv} ({self.compacted_rv})")
        return [e for e in self._events if e.rv > rv]

    def subscribe(
        self, *, queue: asyncio.Queue[Item] | None = None, external: bool = True
    ) -> Subscription:
        sub = Subscription(self, queue, external)
        self._subscribers.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subscribers.discard(sub)

    def compact(self, upto_rv: int) -> None:
        self._events = deque(e for e in self._events if e.rv > upto_rv)
        self.compacted_rv = max(self.compacted_rv, upto_rv)

    def signal(self, control: Control) -> int:
        targets = [s for s in self._subscribers if s.external]
        for sub in targets:
            sub.queue.put_nowait(control)
        return len(targets)

    @property
    def watcher_count(self) -> int:
        return sum(1 for s in self._subscribers if s.external)
