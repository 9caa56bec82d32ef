"""What the control plane needs from a platform: the interface its consumer owns.

A platform turns "wake this app" and "put it to sleep" into real work (local processes,
Kubernetes scale calls) and reports what changed on its side as events: the set of apps
(a platform that discovers apps), the ready endpoints of an app, an app that went away
on its own. It never touches the readiness board or the route table: the lifecycle is
the one writer of both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import FailureKind


class WakeFailed(Exception):
    """The platform could not make the app ready (its process died, its image is gone…).

    `kind` UNAVAILABLE says the platform itself could not be reached (an API outage), so
    held requests are told to retry later instead of being told the app is broken.
    `not_deployed` says there is nothing to wake yet (an app built from source with no
    release deployed): counted apart from failures, since nothing was tried.
    """

    def __init__(
        self, reason: str, kind: FailureKind = FailureKind.FAILED, *, not_deployed: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.not_deployed = not_deployed


class StillStarting(TimeoutError):
    """The wake's time is up, but what it started is on its way and left running (a pod
    pulling its image): `status` says where it is."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True, slots=True)
class AppExited:
    """An awake app went away without being asked to (crash, OOM kill, killed by hand)."""

    app: str
    reason: str


@dataclass(frozen=True, slots=True)
class AppsChanged:
    """The whole current set of apps (added, changed and removed ones at once).

    The platform has already settled host conflicts: no two policies claim one host.
    """

    policies: tuple[AppPolicy, ...]


@dataclass(frozen=True, slots=True)
class EndpointsChanged:
    """The ready endpoints of `app` are now exactly `endpoints` (empty: none serves).

    Reported whenever the set changes outside a wake or sleep the lifecycle asked for:
    a new replica became ready, all replicas went away, someone scaled the app by hand.
    """

    app: str
    endpoints: tuple[Endpoint, ...]


PlatformEvent = AppExited | AppsChanged | EndpointsChanged


class Platform(Protocol):
    """Callers make at most one `wake` or `sleep` per app at a time (the lifecycle does)."""

    async def start(self) -> None: ...

    async def close(self) -> None:
        """Stop every app; nothing the platform started may outlive it."""
        ...

    # The platform owns the deadline so it can stop what it started before giving up.
    async def wake(self, app: str, *, timeout: float) -> tuple[Endpoint, ...]:  # noqa: ASYNC109
        """Start or scale up `app`; return once at least one endpoint really answers.

        Raises WakeFailed with a reason, or TimeoutError after `timeout` seconds, having
        stopped whatever it started — or, for a start that is slow but progressing (a pod
        pulling its image), leaving it to a give-up of the platform's own, which a later
        wake joins. Cancelling it also stops whatever it started.
        """
        ...

    async def sleep(self, app: str, *, held: bool = False) -> None:
        """Stop or scale `app` to zero; return once it is stopped. Idempotent.

        `held`: an operator asked (`wakeproxy sleep`), so `held_asleep` says so until
        the app's next wake, on every replica (a never-sleep app is not woken meanwhile).
        """
        ...

    def held_asleep(self, app: str) -> bool:
        """Whether an operator's sleep holds `app` asleep now (see `sleep`)."""
        ...

    async def next_event(self) -> PlatformEvent:
        """Wait for the next change on the platform's side (never one we caused)."""
        ...

    def leader(self) -> bool:
        """Whether this replica decides sleeps now (a platform without peers always does)."""
        ...
