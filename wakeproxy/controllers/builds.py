"""What a build is: its state, its outcome and its log, as the admin API shows them.

A `Build` is written by the builder that runs it (and `deployed_at` by the deployer);
everyone else reads. The log is a bounded byte buffer with absolute offsets, so a reader
that follows it resumes where it stopped and learns when the build ended.
Must never: run anything, or touch the file system.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

HIDDEN = b"***"
_LOG_LIMIT = 1024 * 1024  # bytes of log kept per build (build_limits.log_bytes)
_TAIL_LINES = 20


class BuildState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (BuildState.SUCCEEDED, BuildState.FAILED, BuildState.CANCELLED)


class BuildLog:
    """Append-only output with absolute offsets; readers wait on `grown()`.

    At most `limit` bytes are kept: the oldest output goes first (`dropped` is told how
    much), and a reader that asks for it gets a line saying so instead.
    """

    def __init__(self, limit: int = _LOG_LIMIT,
                 dropped: Callable[[int], None] | None = None) -> None:
        self._data = bytearray()
        self._dropped = 0  # bytes dropped from the front to respect the limit
        self._limit = limit
        self._on_drop = dropped
        self._grown: asyncio.Event | None = None
        self._hidden: tuple[bytes, ...] = ()
        self.closed = False

    def hide(self, secrets: tuple[str, ...]) -> None:
        """Write `***` for each of `secrets` (repo URLs' credentials) wherever output
        would show it: git's own messages, or a build's, may echo the URL."""
        self._hidden = (*self._hidden, *(s.encode() for s in secrets if s))

    @property
    def end(self) -> int:
        return self._dropped + len(self._data)

    def write(self, chunk: bytes) -> None:
        if not chunk or self.closed:
            return
        self._data += self._scrub(chunk)
        excess = len(self._data) - self._limit
        if excess > 0:
            del self._data[:excess]
            self._dropped += excess
            if self._on_drop is not None:
                self._on_drop(excess)
        self._fire()

    def line(self, text: str) -> None:
        self.write(text.encode() + b"\n")

    def close(self) -> None:
        self.closed = True
        self._fire()

    def restore(self, data: bytes, end: int) -> None:
        """Become a finished log as saved earlier: its last bytes `data`, ending at `end`."""
        data = self._scrub(data)[-self._limit :]
        self._data = bytearray(data)
        self._dropped = max(0, end - len(data))
        self.close()

    def _scrub(self, data: bytes) -> bytes:
        for secret in self._hidden:
            data = data.replace(secret, HIDDEN)
        return data

    @property
    def size(self) -> int:
        """Bytes held in memory."""
        return len(self._data)

    def evict(self) -> int:
        """Forget a finished log's bytes (it can be read back from elsewhere); how many."""
        size = len(self._data)
        self._dropped += size
        self._data = bytearray()
        return size

    def read(self, offset: int) -> tuple[bytes, int]:
        """Bytes from `offset` (or the oldest kept) to the end, and the new offset; a line
        says how much older output is gone when `offset` is before what is kept."""
        start = max(offset, self._dropped) - self._dropped
        data = bytes(self._data[start:])
        if offset < self._dropped and self._data:
            gone = self._dropped - offset
            data = (f"==> {gone} bytes of older output were dropped (a build log keeps its "
                    f"last {self._limit} bytes: build_limits.log_bytes)\n").encode() + data
        return data, self.end

    def grown(self) -> asyncio.Event:
        """Set at the next write or when the log closes."""
        if self._grown is None:
            self._grown = asyncio.Event()
        return self._grown

    def tail(self, lines: int = _TAIL_LINES) -> list[str]:
        text = bytes(self._data[-64 * 1024 :]).decode("utf-8", "replace")
        return text.splitlines()[-lines:]

    def _fire(self) -> None:
        event, self._grown = self._grown, None
        if event is not None:
            event.set()


@dataclass(eq=False)
class Build:
    id: str
    app: str
    repo: str
    ref: str
    created_at: float  # wall-clock seconds, for people
    state: BuildState = BuildState.QUEUED
    commit: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    reason: str | None = None  # why it failed or was cancelled
    release_dir: str | None = None
    deployed_at: float | None = None
    # To be deployed once it succeeds (a review app's push, a build asked with `deploy`):
    # on Kubernetes the build Job carries it, so a restarted wakeproxy still deploys it.
    deploy: bool = False
    # How that deploy ended (set by the controllers once it did): what it did, or why the
    # build was not deployed. Neither set yet: the deploy is still to come.
    deploy_outcome: str | None = None
    deploy_error: str | None = None
    log: BuildLog = field(default_factory=BuildLog)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def view(self, *, tail: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "app": self.app, "ref": self.ref, "commit": self.commit,
            "state": self.state.value, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "exit_code": self.exit_code, "reason": self.reason,
            "deployed_at": self.deployed_at, "log_bytes": self.log.end,
            "deploy_outcome": self.deploy_outcome, "deploy_error": self.deploy_error,
        }
        if tail:
            out["log_tail"] = self.log.tail()
        return out
