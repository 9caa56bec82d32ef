"""How the CLI shows the admin API's answers in a terminal: durations and tables.

Pure functions of the JSON the admin server sends; tolerant of missing fields (an older
or newer server) so a display never fails where the data is merely incomplete.
Must never: call the network, read config, or print.
"""

from __future__ import annotations

import datetime
import zoneinfo
from typing import Any

from wakeproxy.model.quantity import format_cpu, format_memory


def format_duration(seconds: float) -> str:
    """300 → 5m, 90 → 1m30s, 0.25 → 250ms, 3600 → 1h."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


def _last_access(app: dict[str, Any]) -> str:
    idle = app.get("idle_seconds")
    if isinstance(idle, int | float):
        return "just now" if idle < 1 else f"{format_duration(idle)} ago"
    return "never"


def _idle_after(value: object) -> str:
    return format_duration(value) if isinstance(value, int | float) else str(value or "-")


def format_table(apps: list[dict[str, Any]]) -> str:
    header = ("APP", "STATE", "HOSTS", "IN-FLIGHT", "LAST ACCESS", "IDLE AFTER")
    rows = [header] + [
        (
            str(a.get("name", "?")),
            str(a.get("state", "?")),
            ",".join(a.get("hosts") or []) or "-",
            # Open tunnels (WebSocket, SSE upgrades) keep an app awake like requests do.
            str(a.get("in_flight", 0) + a.get("tunnels", 0)),
            _last_access(a),
            _idle_after(a.get("idle_after")),
        )
        for a in apps
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for a in apps:
        if a.get("last_failure"):
            lines.append(f"{a.get('name')}: last wake failed: {a['last_failure']}")
    for a in apps:
        scheduled = _schedule(a.get("schedule"))
        if scheduled:
            lines.append(f"{a.get('name')}: {scheduled}")
        if a.get("idle_after") == "never":
            lines.append(f"{a.get('name')}: {_never_sleeps(a)}")
    return "\n".join(lines)


def _never_sleeps(app: dict[str, Any]) -> str:
    if app.get("held_asleep"):
        return ("never sleeps, but put to sleep with wakeproxy sleep: asleep until a request "
                "or wakeproxy wake wakes it")
    if app.get("state") in ("asleep", "waking"):
        return "never sleeps: woken without a request"
    return "never sleeps"


def _local(iso: object, zone: object) -> str:
    """An ISO UTC instant as a time in the schedule's zone: `Mon 2026-12-07 08:00 CET`."""
    try:
        when = datetime.datetime.fromisoformat(str(iso).replace("Z", "+00:00"))
        when = when.astimezone(zoneinfo.ZoneInfo(str(zone)))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return str(iso)
    return when.strftime("%a %Y-%m-%d %H:%M %Z")


def _schedule(schedule: object) -> str:
    if not isinstance(schedule, dict):
        return ""
    zone = schedule.get("time_zone")
    parts = []
    if schedule.get("awake_until"):
        parts.append(f"kept awake until {_local(schedule['awake_until'], zone)}")
    if schedule.get("next_wake"):
        parts.append(f"next scheduled wake {_local(schedule['next_wake'], zone)}")
    return "; ".join(parts)


def _num(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def format_savings(report: dict[str, Any]) -> str:
    """The savings report as a table, a total line and what the period really covers."""
    period, covered = _num(report.get("period_seconds")), _num(report.get("covered_seconds"))
    currency = report.get("currency")
    lines = [f"Savings over the last {format_duration(period)}"]
    if covered < period:
        lines[0] += (f" (covers {format_duration(covered)}: wakeproxy has not been running "
                     "that long)")
    header: tuple[str, ...] = ("APP", "STATE", "ASLEEP", "OF TIME", "REPLICA-HOURS SAVED")
    if currency:
        header += (f"SAVED ({currency})",)
    apps = report.get("apps") or []
    total = report.get("total") or {}

    def row(name: str, state: str, entry: dict[str, Any], ratio: str) -> tuple[str, ...]:
        cells = (name, state, format_duration(_num(entry.get("asleep_seconds"))), ratio,
                 f"{_num(entry.get('replica_hours_saved')):.2f}")
        return cells + ((f"{_num(entry.get('cost_saved')):.2f}",) if currency else ())

    rows = [header] + [
        row(str(a.get("name", "?")), str(a.get("state", "?")), a,
            f"{round(_num(a.get('asleep_ratio')) * 100)}%")
        for a in apps
    ]
    rows.append(row("TOTAL", f"{len(apps)} app{'' if len(apps) == 1 else 's'}", total, ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def format_headroom(view: dict[str, Any]) -> str:
    """`headroom: 2 placeholder pods (2 ready) holding 1 CPU, 512Mi for wakes`."""
    desired, ready = view.get("desired") or {}, view.get("ready") or {}
    pods = int(desired.get("pods") or 0)
    if pods == 0:
        return "headroom: none held (no sleeping app needs room, or it is turned off)"
    cpu = format_cpu(round(float(desired.get("cpu_cores") or 0) * 1000))
    memory = format_memory(int(desired.get("memory_bytes") or 0))
    return (f"headroom: {pods} placeholder pod{'' if pods == 1 else 's'} "
            f"({int(ready.get('pods') or 0)} ready) holding {cpu} CPU, {memory} memory "
            "for wakes")
