"""The savings report: per app and in total, time asleep and replica-hours saved over a period.

Built from what the readiness board already keeps (each app's current sleep and its
recent sleeps, see `model.sleeplog`), so it needs no store of its own. A period that
began before wakeproxy (or before the app was known) is covered only from then on:
`covered_seconds` is min(period, uptime), per app and for the report, and nothing from
before is guessed. Money appears only when `savings.cost_per_replica_hour` is set.

Must never: write to the board, or report time it did not observe as saved.
"""

from __future__ import annotations

from typing import Any

from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.sleeplog import RETENTION
from wakeproxy.obs.views import Now
from wakeproxy.settings import Savings, parse_duration

DEFAULT_PERIOD = 86400.0
MAX_PERIOD = RETENTION


class BadPeriod(ValueError):
    """The period is not a duration between a second and `MAX_PERIOD`."""


def parse_period(text: str | None) -> float:
    """`24h`, `90m`, `3600` → seconds; None → the default (24h). Raises BadPeriod."""
    if text is None:
        return DEFAULT_PERIOD
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = -1.0
    if not 1.0 <= seconds <= MAX_PERIOD:
        raise BadPeriod(
            f"period: expected a duration from 1s to {MAX_PERIOD / 3600:g}h "
            f"like 24h or 90m, got {text!r}")
    return seconds


def _money(replica_hours: float, savings: Savings) -> float | None:
    if savings.cost_per_replica_hour <= 0:
        return None
    return round(replica_hours * savings.cost_per_replica_hour, 4)


def savings_report(
    board: ReadinessBoard, clock: Clock, period: float, savings: Savings,
) -> dict[str, Any]:
    """The report as JSON-ready data: apps sorted by replica-hours saved, most first."""
    now = Now(clock)
    since = now.mono - period
    covered = min(period, now.mono - board.since)
    apps: list[dict[str, Any]] = []
    total_asleep = total_hours = 0.0
    for state in board:
        app_covered = max(0.0, min(period, now.mono - state.added_at))
        asleep = min(state.asleep_within(since, now.mono), app_covered)
        replicas = state.policy.awake_replicas
        hours = asleep * replicas / 3600
        total_asleep += asleep
        total_hours += hours
        apps.append({
            "name": state.name,
            "state": state.phase.value,
            "covered_seconds": round(app_covered, 3),
            "asleep_seconds": round(asleep, 3),
            "asleep_ratio": round(asleep / app_covered, 4) if app_covered > 0 else 0.0,
            "awake_replicas": replicas,
            "replica_hours_saved": round(hours, 4),
            "cost_saved": _money(hours, savings),
        })
    apps.sort(key=lambda a: (-a["replica_hours_saved"], a["name"]))
    priced = savings.cost_per_replica_hour > 0
    return {
        "period_seconds": period,
        "covered_seconds": round(covered, 3),
        "from": now.iso_of(now.mono - covered),
        "to": now.iso_of(now.mono),
        "cost_per_replica_hour": savings.cost_per_replica_hour if priced else None,
        "currency": savings.currency if priced else None,
        "apps": apps,
        "total": {
            "apps": len(apps),
            "asleep_seconds": round(total_asleep, 3),
            "replica_hours_saved": round(total_hours, 4),
            "cost_saved": _money(total_hours, savings),
        },
    }
