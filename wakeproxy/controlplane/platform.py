"""What the control plane needs from a platform: the interface its consumer owns.

A platform turns "wake this app" and "put it to sleep" into real work (local processes,
Kubernetes scale calls) and reports apps that went away on their own. It never touches
the readiness board: the lifecycle is the one writer of phases.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wakeproxy.model.apps import Endpoint


class WakeFailed(Exception):
    """The platform could not make the app ready (its process died, its image is gone…)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AppExited:
    """An awake app went away without being asked to (crash, OOM kill, killed by hand)."""

    app: str
    reason: str


class Platform(Protocol):
    """Callers make at most one `wake` or `sleep` per app at a time (the lifecycle does)."""

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop every app; nothing the platform started may outlive it."""
        ...

    # The platform owns the deadline so it can stop what it started before giving up.
    async def wake(self, app: str, *, timeout: float) -> tuple[Endpoint, ...]:  # noqa: ASYNC109
        """Start or scale up `app`; return once at least one endpoint really answers.

        Raises WakeFailed with a reason, or TimeoutError after `timeout` seconds (having
        stopped whatever it started). Cancelling it also stops whatever it started.
        """
        ...

    async def sleep(self, app: str) -> None:
        """Stop or scale `app` to zero; return once it is stopped. Idempotent."""
        ...

    async def next_event(self) -> AppExited:
        """Wait for the next app that exited on its own (never one we stopped)."""
        ...
