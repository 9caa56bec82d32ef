"""The readiness board: each app's phase and ready endpoints.

One writer: the control plane (waker, sweeper, watchers) calls the `mark_*` methods.
Readers (the data plane, the admin API) read `AppState` fields and wait on `changed()`.
Waiters are woken by setting the current event and replacing it, so a waiter never
misses a transition and never sees a half-applied one (everything runs on one loop).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.changes import Changes
from wakeproxy.model.clock import Clock
from wakeproxy.model.sleeplog import SleepLog


class Phase(enum.StrEnum):
    ASLEEP = "asleep"
    WAKING = "waking"
    AWAKE = "awake"
    STOPPING = "stopping"


class FailureKind(enum.StrEnum):
    """What kind of failure ended a wake: it decides what held requests are answered."""

    # The app could not be made ready (it crashed, its image is gone): 502.
    FAILED = "failed"
    # The platform itself could not be reached (an API outage): 503 with Retry-After,
    # since trying again later is the right thing for a client to do.
    UNAVAILABLE = "unavailable"
    # The app did not become ready within its wake_timeout: 504 with Retry-After, the same
    # answer a request held for that long gets from its own deadline.
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class WakeFailure:
    """Why wake attempt number `attempt` failed; held requests of that attempt get a 502
    (a 503 with Retry-After when `kind` is UNAVAILABLE, a 504 when it is TIMEOUT)."""

    attempt: int
    reason: str
    kind: FailureKind = FailureKind.FAILED


class AppState:
    """One app's live state. Fields are read freely; only `ReadinessBoard` assigns them."""

    __slots__ = (
        "_changed",
        "_rr",
        "added_at",
        "asleep_seconds",
        "attempts",
        "endpoints",
        "failure",
        "phase",
        "phase_since",
        "policy",
        "sleeps",
        "woke_at",
    )

    def __init__(self, policy: AppPolicy, now: float) -> None:
        self.policy = policy
        self.phase = Phase.ASLEEP
        self.phase_since = now
        self.endpoints: tuple[Endpoint, ...] = ()
        self.attempts = 0
        self.failure: WakeFailure | None = None
        self.woke_at: float | None = None
        # Time spent asleep before the current sleep began (the cost it saved).
        self.asleep_seconds = 0.0
        # When the board learnt of the app: savings before it are unknown, not zero.
        self.added_at = now
        self.sleeps = SleepLog()  # recent sleeps that ended, for savings over a period
        # Made when someone first waits: an Event costs ~700 bytes, and most apps of a big
        # cluster are never waited on between two transitions.
        self._changed: asyncio.Event | None = None
        self._rr = 0

    @property
    def name(self) -> str:
        return self.policy.name

    def changed(self) -> asyncio.Event:
        """An event set at the next transition of this app (then replaced)."""
        changed = self._changed
        if changed is None:
            changed = self._changed = asyncio.Event()
        return changed

    def pick(self) -> Endpoint | None:
        """A ready endpoint, round robin across them; None when none is ready."""
        eps = self.endpoints
        if not eps:
            return None
        if len(eps) == 1:
            return eps[0]
        self._rr = (self._rr + 1) % len(eps)
        return eps[self._rr]

    def total_asleep(self, now: float) -> float:
        """Seconds spent asleep since the app was added, the current sleep included."""
        if self.phase is Phase.ASLEEP:
            return self.asleep_seconds + (now - self.phase_since)
        return self.asleep_seconds

    def asleep_within(self, since: float, now: float) -> float:
        """Seconds spent asleep between `since` and `now`, the current sleep included.

        Exact for the app's recent sleeps (see SleepLog); nothing before `added_at` counts.
        """
        since = max(since, self.added_at)
        total = self.sleeps.asleep_between(since, now)
        if self.phase is Phase.ASLEEP:
            total += max(0.0, now - max(since, self.phase_since))
        return total


class ReadinessBoard:
    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.since = clock.monotonic()  # what a report over "the last N hours" can cover
        self._apps: dict[str, AppState] = {}
        # The same dict, for readers on the hot path (a C lookup, not a method call).
        # Never written through this name.
        self.states: Mapping[str, AppState] = self._apps
        self._awake: set[str] = set()
        # Told when an app's state is added or removed (not when its fields change:
        # readers read those live from the state).
        self.changes = Changes()

    # -- readers ---------------------------------------------------------------------

    def get(self, name: str) -> AppState | None:
        return self._apps.get(name)

    def __iter__(self) -> Iterator[AppState]:
        return iter(list(self._apps.values()))

    def __len__(self) -> int:
        return len(self._apps)

    def not_asleep(self) -> list[AppState]:
        """Apps that are waking, awake or stopping: what a sweep has to look at."""
        return [self._apps[n] for n in self._awake]

    # -- the writer's API --------------------------------------------------------------

    def put(self, policy: AppPolicy) -> AppState:
        """Add an app, or replace its policy keeping its live state."""
        state = self._apps.get(policy.name)
        if state is None:
            state = AppState(policy, self._clock.monotonic())
            self._apps[policy.name] = state
            self.changes.changed()
        else:
            state.policy = policy
        return state

    def remove(self, name: str) -> None:
        state = self._apps.pop(name, None)
        self._awake.discard(name)
        if state is not None:
            state.endpoints = ()
            self._fire(state)
            self.changes.changed()

    def mark_waking(self, name: str) -> int:
        """A wake starts; returns its attempt number."""
        state = self._apps[name]
        state.attempts += 1
        self._set_phase(state, Phase.WAKING)
        return state.attempts

    def mark_ready(self, name: str, endpoints: tuple[Endpoint, ...]) -> None:
        state = self._apps[name]
        if not endpoints:
            raise ValueError("an app is ready only with at least one endpoint")
        state.endpoints = endpoints
        state.failure = None
        if state.phase is not Phase.AWAKE:
            state.woke_at = self._clock.monotonic()
            self._set_phase(state, Phase.AWAKE)
        else:
            self._fire(state)

    def mark_wake_failed(
        self, name: str, reason: str, kind: FailureKind = FailureKind.FAILED,
    ) -> None:
        state = self._apps[name]
        state.failure = WakeFailure(state.attempts, reason, kind)
        state.endpoints = ()
        self._set_phase(state, Phase.ASLEEP)

    def mark_stopping(self, name: str) -> None:
        """Take the app out of rotation before its processes are stopped."""
        state = self._apps[name]
        state.endpoints = ()
        self._set_phase(state, Phase.STOPPING)

    def mark_asleep(self, name: str) -> None:
        state = self._apps[name]
        state.endpoints = ()
        self._set_phase(state, Phase.ASLEEP)

    def _set_phase(self, state: AppState, phase: Phase) -> None:
        now = self._clock.monotonic()
        if state.phase is Phase.ASLEEP and phase is not Phase.ASLEEP:
            state.asleep_seconds += now - state.phase_since
            state.sleeps.add(state.phase_since, now)
        if phase is Phase.ASLEEP:
            self._awake.discard(state.name)
        else:
            self._awake.add(state.name)
        if state.phase is not phase:
            state.phase = phase
            state.phase_since = now
        self._fire(state)

    @staticmethod
    def _fire(state: AppState) -> None:
        old = state._changed
        if old is not None:  # nobody waits on a transition nobody asked about
            state._changed = None
            old.set()
