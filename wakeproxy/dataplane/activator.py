"""Holding requests while their app wakes, and releasing them in step with capacity.

Owns the per-app queues of held requests, their wake deadlines and one watcher task per
app with waiters. It asks for wakes through `WakeDemand` only: it never scales, probes or
writes the readiness board, and never touches a socket.

Release rule: when the app shows an endpoint, at most `release_concurrency` held
requests go at once; each further one goes when an earlier released one got its
response head or failed (`HoldQueue.step`), so a fresh app is not flooded.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog

from wakeproxy.dataplane.errors import (
    AppUnavailable,
    InternalError,
    ProxyError,
    WakeFailed,
    WakeTimeout,
)
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.board import AppState, FailureKind, Phase, ReadinessBoard, WakeFailure
from wakeproxy.model.clock import Clock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.stats import RequestStats

log = structlog.get_logger("wakeproxy.dataplane")


class HeldRequest(Protocol):
    def released(self, endpoint: Endpoint, queue: HoldQueue, held: float) -> None:
        """Go to `endpoint`; call `queue.step()` once the response head came or it failed."""

    def hold_failed(self, error: ProxyError, held: float) -> None: ...


# A wake-timeout timer may run a hair before its deadline by the loop's clock.
_TIMER_SLACK = 0.001


class _Waiter:
    __slots__ = ("base", "deadline", "since")

    def __init__(self, base: int, since: float, deadline: float) -> None:
        self.base = base  # a failure of an attempt above this one is ours
        self.since = since
        self.deadline = deadline  # loop time when its wake has taken too long


class HoldQueue:
    """The held requests of one app (oldest first) and how many are being released."""

    __slots__ = (
        "_again",
        "_busy",
        "_last_deadline",
        "_ordered",
        "_timer",
        "_timer_at",
        "activator",
        "app",
        "releasing",
        "state",
        "stats",
        "task",
        "waiters",
    )

    def __init__(self, activator: Activator, state: AppState) -> None:
        self.activator = activator
        self.app = state.name
        self.state = state
        # The app's stats record as the queue is made (for an app on the board): held
        # requests that leave after the app was removed count on it, not on a new one
        # that would bring the removed app back into the metrics.
        self.stats = activator.stats.app(state.name)
        self.waiters: dict[HeldRequest, _Waiter] = {}
        self.releasing = 0
        self.task: asyncio.Task[None] | None = None
        self._busy = False
        self._again = False
        # One timer per queue, for its earliest wake deadline, instead of one per held
        # request (a timer handle weighs ~600 bytes; a storm holds thousands).
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._last_deadline = 0.0
        self._ordered = True  # deadlines rise with arrival (one wake_timeout for all)

    def add(self, req: HeldRequest, w: _Waiter, loop: asyncio.AbstractEventLoop) -> None:
        if self.waiters and w.deadline < self._last_deadline:
            self._ordered = False  # the policy's wake_timeout was shortened meanwhile
        self._last_deadline = w.deadline
        self.waiters[req] = w
        if self._timer is None or w.deadline < self._timer_at:
            self._arm(w.deadline, loop)

    def _arm(self, at: float, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._expire)

    def _expire(self) -> None:
        """The earliest deadline came: answer every request whose wake took too long."""
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time() + _TIMER_SLACK
        soonest: float | None = None
        for req, w in list(self.waiters.items()):
            if w.deadline <= now:
                self.timed_out(req)
            else:
                soonest = w.deadline if soonest is None else min(soonest, w.deadline)
                if self._ordered:
                    break  # every later one is due later still
        if soonest is not None and self.waiters and self._timer is None:
            self._arm(soonest, loop)

    def step(self) -> None:
        """One released request got its response head, or failed: let the next one go."""
        self.releasing -= 1
        self.evaluate()

    def cancel(self, req: HeldRequest) -> float | None:
        """The client went away: forget it. Returns the seconds it was held."""
        if req not in self.waiters:
            return None
        held = self._leave(req)
        self.activator.forget_if_done(self)
        return held

    def evaluate(self) -> None:
        # Releasing a request can finish it at once and call step() again; loop instead
        # of recursing so a long queue never nests.
        if self._busy:
            self._again = True
            return
        self._busy = True
        try:
            self._again = True
            while self._again:
                self._again = False
                self._evaluate_once()
        finally:
            self._busy = False
        self.activator.forget_if_done(self)

    def _evaluate_once(self) -> None:
        state = self.state
        act = self.activator
        if act.board.get(self.app) is not state:
            self.fail_all(
                AppUnavailable(f"app {self.app!r} was removed while waking", app=self.app)
            )
            return
        failure = state.failure
        if failure is not None:
            for req, w in list(self.waiters.items()):
                if failure.attempt > w.base:
                    req.hold_failed(self._failed(failure), self._leave(req))
        limit = state.policy.release_concurrency
        while self.waiters and self.releasing < limit:
            endpoint = state.pick()
            if endpoint is None:
                break
            req = next(iter(self.waiters))
            held = self._leave(req)
            self.releasing += 1
            req.released(endpoint, self, held)
        if self.waiters and state.phase is Phase.ASLEEP:
            # Asleep again without a failure of our attempt (a scale-down raced the
            # wake, or a newer request came after a failure): ask again.
            act.demand.request(self.app)

    def _failed(self, failure: WakeFailure) -> ProxyError:
        app, retry = self.app, self.activator.retry_after
        if failure.kind is FailureKind.TIMEOUT:
            timeout = self.state.policy.wake_timeout
            return WakeTimeout(f"app {app!r} did not wake within {timeout:g}s; try again "
                               "shortly", app=app, retry_after=retry)
        if failure.kind is FailureKind.UNAVAILABLE:
            return AppUnavailable(f"app {app!r} cannot be woken now: {failure.reason}",
                                  app=app, retry_after=retry)
        return WakeFailed(f"app {app!r} failed to wake: {failure.reason}", app=app)

    def fail_all(self, error: ProxyError) -> None:
        for req in list(self.waiters):
            req.hold_failed(error, self._leave(req))

    def _leave(self, req: HeldRequest) -> float:
        w = self.waiters.pop(req)
        if not self.waiters:
            self._ordered = True
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        act = self.activator
        held = act.clock.monotonic() - w.since
        s = self.stats
        s.held -= 1
        s.held_duration.observe(held)
        return held

    def timed_out(self, req: HeldRequest) -> None:
        if req not in self.waiters:
            return
        timeout = self.state.policy.wake_timeout
        req.hold_failed(
            WakeTimeout(
                f"app {self.app!r} did not wake within {timeout:g}s; try again shortly",
                app=self.app,
                retry_after=self.activator.retry_after,
            ),
            self._leave(req),
        )
        self.activator.forget_if_done(self)


class Activator:
    """Per-app hold queues. `hold` returns the queue, or None when it is full."""

    def __init__(
        self,
        *,
        board: ReadinessBoard,
        demand: WakeDemand,
        stats: RequestStats,
        clock: Clock,
        retry_after: int,
    ) -> None:
        self.board = board
        self.demand = demand
        self.stats = stats
        self.clock = clock
        self.retry_after = retry_after
        self._queues: dict[str, HoldQueue] = {}

    @property
    def held(self) -> int:
        return sum(len(q.waiters) for q in self._queues.values())

    def hold(
        self, req: HeldRequest, state: AppState, timeout: float | None = None
    ) -> HoldQueue | None:
        """`timeout`: held at most this long (a WakeTimeout then), instead of the app's
        wake_timeout."""
        q = self._queues.get(state.name)
        if q is None or q.state is not state:
            q = self._queues[state.name] = HoldQueue(self, state)
        policy = state.policy
        if len(q.waiters) >= policy.max_held_requests:
            q.stats.rejected_held += 1
            return None
        base = state.attempts if state.phase is Phase.ASLEEP else state.attempts - 1
        loop = asyncio.get_running_loop()
        wait = policy.wake_timeout if timeout is None else min(timeout, policy.wake_timeout)
        q.add(req, _Waiter(base, self.clock.monotonic(), loop.time() + wait), loop)
        q.stats.held += 1
        self.demand.request(q.app)
        if q.task is None:
            q.task = loop.create_task(self._watch(q), name=f"wakeproxy-hold-{q.app}")
        return q

    def fail_all(self, error: ProxyError) -> None:
        for q in list(self._queues.values()):
            q.fail_all(error)
            self.forget_if_done(q)

    def forget_if_done(self, q: HoldQueue) -> None:
        if q.waiters:
            return
        task = q.task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            q.task = None
        if q.releasing <= 0 and self._queues.get(q.app) is q:
            del self._queues[q.app]

    async def _watch(self, q: HoldQueue) -> None:
        try:
            while q.waiters:
                changed = q.state.changed()
                q.evaluate()
                if not q.waiters:
                    break
                await changed.wait()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("hold watcher failed", app=q.app)
            q.fail_all(InternalError(f"app {q.app!r}: the wait for its wake broke", app=q.app))
        finally:
            if q.task is asyncio.current_task():
                q.task = None
