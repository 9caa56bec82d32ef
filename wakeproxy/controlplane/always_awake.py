"""Apps that never sleep (`idle_after: never`) are kept up: woken whenever found asleep.

A user expects a production app to serve before its first visitor, so the leader wakes
such an app whenever it sees it asleep and no wake under way: at start-up (a local app
starts asleep), after its process exited, and on Kubernetes whenever its Deployment is
at zero replicas (a new leader's first look, `idle-after: never` added to a sleeping
app). A wake that fails is tried again after a back-off (5 s, doubling up to 5 min), so a
broken app is not restarted in a tight loop; an awake app starts the back-off afresh.

An operator is not fought: after `wakeproxy sleep APP` the platform holds the app asleep
(`Platform.held_asleep`) until its next wake (a request, `wakeproxy wake`), and it is kept
up again from then on. Locally the hold lasts for this run of wakeproxy; on Kubernetes it
is recorded on the Deployment, so every replica and the next leader honour it.
Must never: put an app to sleep, or write the board (the lifecycle does).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from wakeproxy.controlplane.unasked import UnaskedWakes
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import Clock

log = structlog.get_logger("wakeproxy.always_awake")

RETRY_AFTER = 5.0  # seconds after a failed wake before the next try; doubles per failure
RETRY_MAX = 300.0


class AlwaysAwake:
    def __init__(
        self, *, board: ReadinessBoard, wake: Callable[[str], Awaitable[None]],
        held: Callable[[str], bool], clock: Clock, leader: Callable[[], bool] = lambda: True,
        interval: float = 1.0,
    ) -> None:
        self._board = board
        self._wakes = UnaskedWakes(wake, kind="never-sleep")
        self._held = held
        self._clock = clock
        self._leader = leader
        self._interval = interval
        self._retry: dict[str, tuple[int, float]] = {}  # app → (failed wakes, next try at)

    async def settled(self, app: str) -> None:
        """Until a wake this started for `app` has ended (tests; shutdown uses close)."""
        await self._wakes.settled(app)

    def tick(self) -> list[str]:
        """Start a wake of every never-sleep app found asleep now; returns those apps."""
        if not self._leader():
            # Back-offs are the leader's alone: a replica that lost the lead keeps none
            # (not of apps removed while it follows either); leading again, it tries each
            # app once at its first look, as any new leader does.
            self._retry.clear()
            return []
        now = self._clock.monotonic()
        due, seen = [], set()
        for state in self._board:
            policy = state.policy
            if not policy.never_sleeps:
                continue
            name = state.name
            seen.add(name)
            if state.phase is Phase.AWAKE:
                self._retry.pop(name, None)
                continue
            if (state.phase is not Phase.ASLEEP or policy.unavailable is not None
                    or self._wakes.running(name) or self._held(name)):
                continue
            retry = self._retry.get(name)
            if retry is None or now >= retry[1]:
                due.append(name)
        for gone in set(self._retry) - seen:
            del self._retry[gone]
        for app in due:
            log.info("waking an app that never sleeps: it was found asleep", app=app)
            self._wakes.start(app, self._finished)
        return due

    def _finished(self, app: str, woke: bool) -> None:
        if woke:
            self._retry.pop(app, None)
            return
        failures = self._retry.get(app, (0, 0.0))[0] + 1
        delay = min(RETRY_MAX, RETRY_AFTER * 2 ** (failures - 1))
        self._retry[app] = (failures, self._clock.monotonic() + delay)
        log.info("never-sleep app: next wake after a back-off", app=app,
                 seconds=delay, failed_wakes=failures)

    async def run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("never-sleep apps: tick failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        await self._wakes.close()
