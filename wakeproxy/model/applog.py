"""An app's own output: its last lines kept in memory, and the readers that follow it.

`AppLog` holds the newest lines of one app (bounded by a line count and by bytes) across
its runs, so they are there after it went to sleep, and hands every new line to each
`Follower`. A follower has its own bounded queue: when its reader falls behind, new lines
are dropped for that reader alone and it gets a marker line saying how many. Writing
never waits for a reader, so a slow reader slows neither the app nor other readers.
Marker lines (start, sleep, drops) begin with `MARK`.

Output moves as text blocks of whole lines, each line ending in a newline, as the app
wrote them: one append per block to the ring and to each queue, with the line count
kept beside it; lines are split out only when a reader asks for lines, or when a bound
cuts a block (rare). So an app printing 10,000 lines a second costs the event loop a few
operations per read of its pipe, not per line.
Must never: block or await in `write`, or grow without bound.
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


def block(lines: Iterable[str]) -> tuple[str, int]:
    """Lines (without newlines) as a block and its line count."""
    listed = list(lines)
    return ("\n".join(listed) + "\n" if listed else ""), len(listed)


def _head(text: str, lines: int, size: int) -> tuple[str, int]:
    """The longest start of block `text` of whole lines within `lines` and `size`."""
    end = count = 0
    while count < lines:
        newline = text.find("\n", end)
        if newline < 0 or newline + 1 > size:
            break
        end, count = newline + 1, count + 1
    return text[:end], count


class Follower:
    """One reader's queue: `next_text()` returns the lines that came since the last call."""

    def __init__(self, *, lines: int = QUEUE_LINES, size: int = QUEUE_BYTES,
                 on_close: Callable[[Follower], None] | None = None) -> None:
        self._queue: deque[str] = deque()  # blocks of whole lines
        self._lines = 0
        self._size = 0
        self._max_lines = lines
        self._max_size = size
        self._dropped = 0
        self._ready = asyncio.Event()
        self._on_close = on_close
        self.closed = False  # no line will come after what is queued
        self.total_dropped = 0

    def push(self, lines: Iterable[str]) -> None:
        self.write(*block(lines))

    def write(self, text: str, count: int) -> None:
        """Queue `count` whole lines, `text` (each line ending in a newline)."""
        if self.closed or not count:
            return
        if self._dropped:
            # Once behind, drop until the reader has caught up: no gap is left unsaid.
            self._dropped += count
            return
        if self._lines + count > self._max_lines or self._size + len(text) > self._max_size:
            kept, fits = _head(text, self._max_lines - self._lines, self._max_size - self._size)
            self._dropped = count - fits
            text, count = kept, fits
        if count:
            self._queue.append(text)
            self._lines += count
            self._size += len(text)
        self._ready.set()

    def end(self) -> None:
        """No more lines: `next_text()` returns what is queued, then None."""
        self.closed = True
        self._ready.set()

    async def next_text(self, within: float | None = None) -> str | None:
        """The queued lines as one text (a drop marker after them if lines were lost),
        waiting for one if none is queued ("" when none came `within` seconds); None once
        the follower ended and everything was read."""
        while not self._queue and not self._dropped:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), within)
            except TimeoutError:
                return ""
        text = "".join(self._queue)
        self._queue.clear()
        self._lines = self._size = 0
        if self._dropped:
            text += (f"{MARK}{self._dropped} lines dropped: this reader fell behind "
                     f"(at most {self._max_lines} lines wait for one reader)\n")
            self.total_dropped += self._dropped
            self._dropped = 0
        return text

    async def next(self, within: float | None = None) -> list[str] | None:
        """`next_text()` as lines: an empty list when none came `within` seconds."""
        text = await self.next_text(within)
        if text is None:
            return None
        return text[:-1].split("\n") if text else []

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
        self._blocks: deque[str] = deque()  # each one or more whole lines
        self._lines = 0
        self._size = 0
        self._max_lines = lines
        self._max_size = size
        self._followers: set[Follower] = set()
        self.awake = False

    def write(self, text: str, count: int) -> None:
        """Keep and hand on `count` whole lines, `text` (each ending in a newline)."""
        if not count:
            return
        self._blocks.append(text)
        self._lines += count
        self._size += len(text)
        if self._lines > self._max_lines or self._size > self._max_size:
            self._trim()
        for follower in self._followers:
            follower.write(text, count)

    def extend(self, lines: list[str]) -> None:
        self.write(*block(lines))

    def _trim(self) -> None:
        """Drop the oldest lines until both bounds hold: whole blocks, then lines off the
        front of the oldest block left."""
        blocks = self._blocks
        while self._lines > self._max_lines or self._size > self._max_size:
            first = blocks[0]
            count = first.count("\n")
            over_lines = self._lines - self._max_lines
            over_size = self._size - self._max_size
            if count <= over_lines or len(first) <= over_size:
                blocks.popleft()
                self._lines -= count
                self._size -= len(first)
                continue
            cut = dropped = 0
            while dropped < over_lines or cut < over_size:
                cut = first.index("\n", cut) + 1
                dropped += 1
            self._lines -= dropped
            self._size -= cut
            if cut < len(first):
                blocks[0] = first[cut:]
            else:
                blocks.popleft()

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
        newest: list[str] = []
        found = 0
        for text in reversed(self._blocks):
            newest.append(text)
            found += text.count("\n")
            if found >= count:
                break
        lines = "".join(reversed(newest)).split("\n")
        lines.pop()  # what follows the last newline: nothing
        return lines[-count:]

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
