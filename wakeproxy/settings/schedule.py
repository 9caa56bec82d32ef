"""An app's `awake_schedule` (config file, or the `wakeproxy.io/awake-schedule` annotation)
→ an AwakeSchedule.

Owns the two ways to write a window: a time of day on some days (`{days: mon-fri, from:
"08:00", to: "20:00"}`, turned into a cron expression and a length) or a cron expression
and a length (`{cron: "0 6 * * sat", for: 2h}`). Cron syntax is croniter's and time zones
are the system's IANA database (zoneinfo): nothing here parses either by hand. Never reads
files; raises ValueError for anything it cannot take.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from wakeproxy.model.apps import AwakeSchedule, AwakeWindow
from wakeproxy.settings.values import positive_duration

EXPECTED = ('an awake schedule like {time_zone: Europe/Berlin, windows: [{days: mon-fri, '
            'from: "08:00", to: "20:00"}, {cron: "0 6 * * sat", for: 2h}]}')
_TIME = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")
_DAYS = {"weekdays": "mon-fri", "weekends": "sat,sun", "daily": "*"}


def _minutes(v: object) -> int:
    """`"08:00"` → 480. Unquoted 20:00 is a number to YAML (base 60): quote times."""
    m = _TIME.match(v) if isinstance(v, str) else None
    if m is None:
        raise ValueError(v)
    return int(m.group(1)) * 60 + int(m.group(2))


def _window(raw: object) -> AwakeWindow:
    if not isinstance(raw, dict):
        raise ValueError(raw)
    keys = set(raw)
    if keys == {"cron", "for"}:
        cron, seconds = raw["cron"], positive_duration(raw["for"])
    elif keys <= {"days", "from", "to"} and {"from", "to"} <= keys:
        days = str(raw.get("days", "*")).strip().lower()
        start, end = _minutes(raw["from"]), _minutes(raw["to"])
        length = (end - start) % (24 * 60) or 24 * 60  # to before from: past midnight
        cron, seconds = f"{start % 60} {start // 60} * * {_DAYS.get(days, days)}", length * 60.0
    else:
        raise ValueError(raw)
    # Imported here, as in controlplane/schedule.py: only a config with a schedule pays
    # for croniter.
    from croniter import croniter

    if not isinstance(cron, str) or len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ValueError(cron)
    return AwakeWindow(cron=" ".join(cron.split()), seconds=float(seconds))


def awake_schedule(v: object) -> AwakeSchedule:
    """A mapping, or its text in YAML flow style (how an annotation carries it)."""
    doc: Any = yaml.safe_load(v) if isinstance(v, str) else v
    if not isinstance(doc, dict) or not set(doc) <= {"time_zone", "windows"}:
        raise ValueError(v)
    zone = doc.get("time_zone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(zone) from None
    windows = doc.get("windows")
    if not isinstance(windows, list) or not windows:
        raise ValueError(v)
    return AwakeSchedule(time_zone=zone, windows=tuple(_window(w) for w in windows))
