"""The sweeper: puts apps to sleep once they have been idle for their `idle_after`.

Idle means awake, nothing in flight, no open tunnel, and `idle_after` elapsed since the
later of the last access and the moment the app woke, so a freshly woken app gets a full
`idle_after` even if nobody has used it yet, and an app that nobody ever requests is
still swept; an app with `idle_after: never` is never swept, nor one within a window of
its `awake_schedule` (schedule.py). A sweep looks only at apps that are not asleep (the
board keeps that set), so its cost grows with awake apps, not configured ones. It never
writes the board itself: the lifecycle marks an app STOPPING in the same loop step as the
decision.

With several wakeproxy replicas, only the one the platform names `leader` sweeps, and it
decides on cluster-wide activity: an app is busy if any fresh peer has a request open,
and its last access is the latest over every replica (`PeerActivity`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import structlog

from wakeproxy.controlplane.lifecycle import Lifecycle
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.peers import PeerActivity

log = structlog.get_logger("wakeproxy.sweeper")


class Sweeper:
    def __init__(
        self,
        *,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        lifecycle: Lifecycle,
        clock: Clock,
        interval: float,
        leader: Callable[[], bool] = lambda: True,
        peers: PeerActivity | None = None,
        kept_awake: Callable[[str], bool] = lambda app: False,
    ) -> None:
        self._kept_awake = kept_awake  # within a window of its awake_schedule
        self._board = board
        self._ledger = ledger
        self._lifecycle = lifecycle
        self._clock = clock
        self._interval = interval
        self._leader = leader
        self._peers = peers

    def due(self) -> list[str]:
        """Apps to put to sleep now (none unless this replica leads)."""
        if not self._leader():
            return []
        now = self._clock.monotonic()
        peers = self._peers
        out: list[str] = []
        for state in self._board.not_asleep():
            policy = state.policy
            if state.phase is not Phase.AWAKE or policy.never_sleeps:
                continue
            if policy.awake_schedule is not None and self._kept_awake(state.name):
                continue
            activity = self._ledger.peek(state.name)
            since = state.woke_at if state.woke_at is not None else state.phase_since
            if activity is not None:
                if activity.busy:
                    continue
                if activity.last_access is not None and activity.last_access > since:
                    since = activity.last_access
            if peers is not None:
                seen = peers.merged(state.name, now)
                if seen is not None:
                    if seen.in_flight > 0:
                        continue
                    if seen.last_access is not None and seen.last_access > since:
                        since = seen.last_access
            if now - since >= state.policy.idle_after:
                out.append(state.name)
        return out

    def sweep(self) -> dict[str, asyncio.Future[None]]:
        """Decide and take every due app out of rotation, in this one loop step.

        Returns a future per app, done once it is asleep. Because nothing awaits between
        the idle check and the lifecycle marking the app STOPPING, no request can slip in
        between: a request arriving afterwards sees STOPPING and asks for a wake instead.
        """
        started: dict[str, asyncio.Future[None]] = {}
        for app in self.due():
            try:
                started[app] = self._lifecycle.begin_sleep(app)
            except Exception:
                log.exception("could not put idle app to sleep", app=app)
        if started:
            log.info("sweeping idle apps", apps=sorted(started))
        return started

    async def tick(self) -> list[str]:
        """One sweep, waiting until every swept app is asleep; returns the swept apps."""
        started = self.sweep()
        results = await asyncio.gather(*started.values(), return_exceptions=True)
        for app, result in zip(started, results, strict=True):
            if isinstance(result, BaseException):
                log.error("idle app did not go to sleep", app=app, error=repr(result))
        return list(started)

    async def run(self) -> None:
        """Sweep every `interval` seconds, forever. A slow stop never delays the next sweep."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                for app, done in self.sweep().items():
                    done.add_done_callback(functools.partial(_report_failure, app))
            except Exception:
                log.exception("sweep failed")


def _report_failure(app: str, done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (exc := done.exception()) is not None:
        log.error("idle app did not go to sleep", app=app, error=repr(exc))
