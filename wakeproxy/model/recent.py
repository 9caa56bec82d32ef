"""A bounded set of recently seen ids, oldest first: at most `limit`, none older than `window`.

Used to drop duplicate webhook deliveries, whether the ids live in memory and a state
file (local) or in a Lease every replica reads and writes (Kubernetes). Times are wall
clock seconds, given by the caller, so the same ids can be rebuilt from a saved copy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    def __init__(self, limit: int, window: float) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._limit = limit
        self._window = window

    def __contains__(self, key: object) -> bool:
        return key in self._seen

    def add(self, key: str, now: float) -> bool:
        """Record `key` at `now`; False when it was there already (within the bounds)."""
        return self.add_all((key,), now)

    def add_all(self, keys: Iterable[str], now: float) -> bool:
        """Record each of `keys` at `now`; False when any was there already (a delivery
        seen under its id or under its body's digest). The new ones are recorded even
        then, so a later copy under either is known too."""
        self._forget_old(now)
        fresh = True
        for key in keys:
            if key in self._seen:
                fresh = False
            else:
                self._seen[key] = now
        self._trim()
        return fresh

    def discard(self, keys: Iterable[str]) -> None:
        """Forget `keys` (a delivery refused for now, so its redelivery is not a duplicate)."""
        for key in keys:
            self._seen.pop(key, None)

    def restore(self, records: Iterable[tuple[str, float]], now: float) -> None:
        """Add saved (key, time) pairs to what is here; the later time of a key wins."""
        latest: dict[str, float] = {}
        for key, at in [*records, *self._seen.items()]:
            latest[key] = max(at, latest.get(key, at))
        self._seen = OrderedDict(sorted(latest.items(), key=lambda r: r[1]))
        self._forget_old(now)
        self._trim()

    def records(self) -> tuple[tuple[str, float], ...]:
        """(key, seen at) of every remembered id, oldest first."""
        return tuple(self._seen.items())

    def _trim(self) -> None:
        while len(self._seen) > self._limit:
            self._seen.popitem(last=False)

    def _forget_old(self, now: float) -> None:
        horizon = now - self._window
        while self._seen:
            oldest = next(iter(self._seen.values()))
            if oldest >= horizon:
                return
            self._seen.popitem(last=False)
