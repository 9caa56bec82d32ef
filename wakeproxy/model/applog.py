"""An app's own output: its last lines kept in memory, and the readers that follow it.

`AppLog` holds the newest lines of one app (bounded by a line count and by bytes) across
its runs, so they are there after it went to sleep, and hands every new line to each
`Follower`. A follower has its own bounded queue: when its reader falls behind, new lines
are dropped for that reader alone and it gets a marker line saying how many. Writing
never waits for a reader, so a slow reader slows neither the app nor other readers.
Marker lines (start, sleep, drops) begin with `MARK`.
Must never: block or await in `extend`, or grow without bound.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable

MARK = "==> "
ASLEEP = MARK + "app asleep; the stream goes on when it wakes"
LOG_LINES = 1000  # lines kept per app
LOG_BYTES = 1024 * 1024  # bytes kept per app
QUEUE_LINES = 10_000  # lines queued for one follower before its lines are dropped
QUEUE_BYTES = 4 * 1024 * 1024  # bytes queued for one follower


class Follower:
    """One reader's queue: `next()` returns the lines that came since the last call."""

    def __init__(self, *, lines: int = QUEUE_LINES, size: int = QUEUE_BYTES,
                 on_close: Callable[[Follower], None] | None = None) -> None:
        self._queue: deque[str] = deque()
        self._size = 0
        self._max_lines = lines
        self._max_size = size
        self._dropped = 0
        self._ready = asyncio.Event()
        self._on_close = on_close
        self.closed = False  # no line will come after what is queued
        self.total_dropped = 0

    def push(self, lines: Iterable[str]) -> None:
        if self.closed:
            return
        queue, size = self._queue, self._size
        for line in lines:
            cost = len(line) + 1
            if self._dropped or len(queue) >= self._max_lines or size + cost > self._max_size:
                # Once behind, drop until the reader has caught up: no gap is left unsaid.
                self._dropped += 1
                continue
            queue.append(line)
            size += cost
        self._size = size
        self._ready.set()

    def end(self) -> None:
        """No more lines: `next()` returns what is queued, then None."""
        self.closed = True
        self._ready.set()

    async def next(self, within: float | None = None) -> list[str] | None:
        """The queued lines (a drop marker after them if lines were lost), waiting for
        one if none is queued (an empty list when none came `within` seconds); None once
        the follower ended and everything was read."""
        while not self._queue and not self._dropped:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), within)
            except TimeoutError:
                return []
        batch = list(self._queue)
        self._queue.clear()
        self._size = 0
        if self._dropped:
            batch.append(f"{MARK}{self._dropped} lines dropped: this reader fell behind "
                         f"(at most {self._max_lines} lines wait for one reader)")
            self.total_dropped += self._dropped
            self._dropped = 0
        return batch

    def on_close(self, callback: Callable[[Follower], None]) -> None:
        """Call `callback` when the reader goes (a producer stops its work)."""
        self._on_close = callback

    def close(self) -> None:
        """The reader is gone: stop queueing for it."""
        self.end()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback(self)


class AppLog:
    """The last lines of one app and the followers of its output."""

    def __init__(self, *, lines: int = LOG_LINES, size: int = LOG_BYTES) -> None:
        self._lines: deque[str] = deque()
        self._size = 0
        self._max_lines = lines
        self._max_size = size
        self._followers: set[Follower] = set()
        self.awake = False

    def extend(self, lines: list[str]) -> None:
        kept, size = self._lines, self._size
        for line in lines:
            kept.append(line)
            size += len(line) + 1
        while kept and (len(kept) > self._max_lines or size > self._max_size):
            size -= len(kept.popleft()) + 1
        self._size = size
        for follower in self._followers:
            follower.push(lines)

    def mark(self, text: str) -> None:
        self.extend([MARK + text])

    def started(self, text: str) -> None:
        self.awake = True
        self.mark(text)

    def asleep(self) -> None:
        self.awake = False
        self.extend([ASLEEP])

    def recent(self, count: int) -> list[str]:
        if count <= 0:
            return []
        return list(self._lines)[-count:]

    def follow(self, backlog: int, *, follow: bool = True) -> Follower:
        """A follower that first gets the last `backlog` lines (and a marker if the app is
        asleep), then, if `follow`, every new line until it is closed."""
        follower = Follower(on_close=self._followers.discard)
        lines = self.recent(backlog)
        if not self.awake and (not lines or lines[-1] != ASLEEP):
            lines.append(ASLEEP)
        follower.push(lines)
        if follow:
            self._followers.add(follower)
        else:
            follower.end()
        return follower

    def end(self, text: str) -> None:
        """The app is gone (deleted): tell every follower and end their streams."""
        self.mark(text)
        for follower in list(self._followers):
            follower.end()
        self._followers.clear()

    @property
    def followers(self) -> int:
        return len(self._followers)
