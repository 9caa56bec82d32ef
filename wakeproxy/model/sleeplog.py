"""Each app's recent sleeps, so savings can be reported over a period, in bounded memory.

One writer: the readiness board, when an app leaves ASLEEP (O(1) per transition).
Readers (the savings report) ask how long the app slept within a window.

A record is (start, end, seconds asleep within it). A sleep that ended is appended as an
exact record (asleep == end - start). Records that ended longer than `RETENTION` ago are
dropped, and an app never keeps more than `MAX_RECORDS`: past that, the two oldest are
merged into one coarse record whose sleep a window cutting through it counts pro rata.
So the most recent `MAX_RECORDS` sleeps are always exact and only the oldest part of a
frequently waking app's history is approximate. An app that never woke costs nothing.

Must never: grow without bound, or know about phases (the board passes closed intervals).
"""

from __future__ import annotations

from array import array

# The longest period a savings report can cover.
RETENTION = 7 * 86400.0
MAX_RECORDS = 64
_W = 3  # floats per record: start, end, asleep


class SleepLog:
    __slots__ = ("_r",)

    def __init__(self) -> None:
        # Created on the first sleep: most apps of a big cluster never need one.
        self._r: array[float] | None = None

    def __len__(self) -> int:
        return 0 if self._r is None else len(self._r) // _W

    def add(self, start: float, end: float) -> None:
        """Record a sleep that lasted from `start` to `end` (monotonic seconds)."""
        if end <= start:
            return
        r = self._r
        if r is None:
            r = self._r = array("d")
        r.extend((start, end, end - start))
        horizon = end - RETENTION
        drop = 0
        while drop < len(r) and r[drop + 1] < horizon:
            drop += _W
        if drop:
            del r[:drop]
        if len(r) > MAX_RECORDS * _W:
            merged = (r[0], r[_W + 1], r[2] + r[_W + 2])
            r[_W:2 * _W] = array("d", merged)
            del r[:_W]

    def asleep_between(self, since: float, until: float) -> float:
        """Seconds of recorded (ended) sleep that fall within [since, until]."""
        r = self._r
        if r is None or until <= since:
            return 0.0
        total = 0.0
        for i in range(len(r) - _W, -1, -_W):
            start, end, asleep = r[i], r[i + 1], r[i + 2]
            if end <= since:
                break  # records are in time order: every older one ends earlier
            lo, hi = max(start, since), min(end, until)
            if hi > lo:
                total += asleep * (hi - lo) / (end - start)
        return total
