"""JSON views of live app state for the admin API (and anything else that shows it).

Monotonic instants become ISO UTC wall times here, and only here, for display.
Must never: write to the board or the ledger's figures, or decide anything.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from wakeproxy.controlplane.schedule import plan
from wakeproxy.model.activity import ActivityLedger, AppActivity
from wakeproxy.model.apps import AwakeSchedule
from wakeproxy.model.board import AppState
from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import HeadroomHeld


def iso_utc(wall: float) -> str:
    """Unix seconds → `2024-05-01T12:00:00.123Z`."""
    dt = datetime.datetime.fromtimestamp(wall, datetime.UTC)
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Now:
    """One reading of both clocks, so every instant in a response uses the same offset."""

    __slots__ = ("mono", "wall")

    def __init__(self, clock: Clock) -> None:
        self.mono = clock.monotonic()
        self.wall = clock.wall()

    def wall_of(self, mono: float) -> float:
        return self.wall - (self.mono - mono)

    def iso_of(self, mono: float | None) -> str | None:
        return None if mono is None else iso_utc(self.wall_of(mono))


def app_view(state: AppState, ledger: ActivityLedger, now: Now, *,
             held_asleep: bool = False) -> dict[str, Any]:
    """`held_asleep`: put to sleep by an operator, not woken since (a never-sleep app is
    left asleep until then)."""
    policy = state.policy
    activity = ledger.peek(state.name) or AppActivity()
    last = activity.last_access
    return {
        "name": state.name,
        "state": state.phase.value,
        "state_since": now.iso_of(state.phase_since),
        "hosts": list(policy.hosts),
        "endpoints": [str(e) for e in state.endpoints],
        "in_flight": activity.in_flight,
        "tunnels": activity.tunnels,
        "requests": activity.requests,
        "last_access": now.iso_of(last),
        # Seconds since the last access on the server's own clock: immune to client skew.
        "idle_seconds": None if last is None else round(max(0.0, now.mono - last), 3),
        # `never` as in the config: JSON has no infinity.
        "idle_after": "never" if policy.never_sleeps else policy.idle_after,
        "held_asleep": held_asleep,
        "wake_timeout": policy.wake_timeout,
        "asleep_seconds": round(state.total_asleep(now.mono), 3),
        "wake_attempts": state.attempts,
        "last_failure": None if state.failure is None else state.failure.reason,
        "promote_to": policy.promote_to,
        "schedule": schedule_view(policy.awake_schedule, now.wall),
    }


def schedule_view(schedule: AwakeSchedule | None, wall: float) -> dict[str, Any] | None:
    """When a scheduled app is next woken, and until when its open window keeps it awake."""
    if schedule is None:
        return None
    p = plan(schedule, wall)
    return {"time_zone": schedule.time_zone,
            "next_wake": iso_utc(p.next_wake) if p.next_wake != math.inf else None,
            "awake_until": None if p.awake_until is None else iso_utc(p.awake_until)}


def headroom_view(held: HeadroomHeld) -> dict[str, Any]:
    """Placeholder pods holding room for wakes, wanted and ready, and what they request."""
    def of(pods: int) -> dict[str, Any]:
        return {"pods": pods, "cpu_cores": pods * held.cpu_millis / 1000,
                "memory_bytes": pods * held.memory_bytes}

    return {"desired": of(held.desired), "ready": of(held.ready)}
