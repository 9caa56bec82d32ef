"""Scheduled wakes: apps kept awake during the windows of their `awake_schedule`.

At each window's start (or at start-up inside a window) the app is woken before anyone
asks; within a window the sweeper leaves it alone (`kept_awake`); outside, `idle_after`
applies as usual. Windows are wall-clock times in the schedule's zone, reckoned with
croniter and zoneinfo (daylight-saving changes included); the clock is injected, so tests
move it by hand. A plan is worked out again only when a window opens or closes, so a tick
costs a dict lookup per app. With several replicas only the leader wakes, as only the
leader sweeps. Must never: put an app to sleep, or write the board (the lifecycle does).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import structlog

from wakeproxy.controlplane.unasked import UnaskedWakes
from wakeproxy.model.apps import AwakeSchedule
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.clock import Clock

log = structlog.get_logger("wakeproxy.schedule")


@dataclass(frozen=True, slots=True)
class Plan:
    """An app's schedule at one instant, in wall-clock seconds."""

    window_start: float | None  # the start of the latest window open now, if one is
    awake_until: float | None  # when the windows open now close
    next_wake: float  # the next window start
    valid_until: float  # the next instant any of this changes


def plan(schedule: AwakeSchedule, wall: float) -> Plan:
    # Imported here: croniter and dateutil weigh ~1.3 MiB resident, and most clusters
    # give no app an awake schedule (then nothing calls this).
    from croniter import croniter

    now = datetime.fromtimestamp(wall, ZoneInfo(schedule.time_zone))
    start: float | None = None
    until: float | None = None
    next_wake = math.inf
    for window in schedule.windows:
        # croniter's get_prev is strictly before its start: a window opening exactly now
        # is found from a microsecond later.
        opened = croniter(window.cron, now + timedelta(microseconds=1)).get_prev(datetime)
        began, ends = opened.timestamp(), opened.timestamp() + window.seconds
        if began <= wall < ends:
            start = began if start is None else max(start, began)
            until = ends if until is None else max(until, ends)
        next_wake = min(next_wake, croniter(window.cron, now).get_next(datetime).timestamp())
    return Plan(window_start=start, awake_until=until, next_wake=next_wake,
                valid_until=min(next_wake, until if until is not None else math.inf))


class ScheduledWakes:
    """Wakes scheduled apps at their windows' starts and says which are kept awake."""

    def __init__(
        self, *, board: ReadinessBoard, wake: Callable[[str], Awaitable[None]], clock: Clock,
        leader: Callable[[], bool] = lambda: True, interval: float = 1.0,
    ) -> None:
        self._board = board
        self._wakes = UnaskedWakes(wake, kind="scheduled")
        self._clock = clock
        self._leader = leader
        self._interval = interval
        self._plans: dict[str, tuple[AwakeSchedule, Plan]] = {}
        self._woken: dict[str, float] = {}  # app → the window start it was woken for

    def kept_awake(self, app: str) -> bool:
        """Within one of the app's windows now: the sweeper must leave it awake."""
        entry = self._plans.get(app)
        if entry is None or entry[1].awake_until is None:
            return False
        return self._clock.wall() < entry[1].awake_until

    def tick(self) -> list[str]:
        """Bring the plans up to date and start the wakes now due; returns those apps."""
        now = self._clock.wall()
        seen, due = set(), []
        for state in self._board:
            schedule = state.policy.awake_schedule
            if schedule is None:
                continue
            seen.add(state.name)
            entry = self._plans.get(state.name)
            if entry is None or entry[0] is not schedule or now >= entry[1].valid_until:
                entry = self._plans[state.name] = (schedule, plan(schedule, now))
            start = entry[1].window_start
            if start is None or self._woken.get(state.name) == start or not self._leader():
                continue
            self._woken[state.name] = start
            if state.phase is not Phase.AWAKE and state.policy.unavailable is None:
                due.append(state.name)
        for gone in set(self._plans) - seen:
            self._plans.pop(gone, None)
            self._woken.pop(gone, None)
        for app in due:
            log.info("scheduled wake: a window of its awake_schedule opened", app=app)
            self._wakes.start(app)
        return due

    async def run(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:
                log.exception("scheduled wakes: tick failed")
            await asyncio.sleep(self._interval)

    async def close(self) -> None:
        await self._wakes.close()
