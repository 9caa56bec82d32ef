"""Shared by the soak, fault and hostile-input tests: the fast app, a lean `wakeproxy serve`
wrapper, /metrics parsing and process counting.

Everything listens on 127.0.0.1 with port 0 or free ports and is stopped by PID.
"""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.e2e.harness import Wakeproxy, pids_alive

FAST_APP = Path(__file__).parent / "apps" / "fast_app.py"


def fast_command(name: str, **env: str) -> str:
    """The shell command running the fast app as `name`: `python -S -E`, no site-packages."""
    assigns = " ".join(f"{k}={v}" for k, v in {"APP_NAME": name, **env}.items())
    return f"{assigns} exec {sys.executable} -S -E {FAST_APP}"


def fast_app(name: str, start_log: Path | None = None, **over: Any) -> dict[str, Any]:
    """An `apps:` entry for the fast app at `<name>.localhost`; `env` keys go to the app."""
    env = {str(k): str(v) for k, v in over.pop("env", {}).items()}
    if start_log is not None:
        env["START_LOG"] = str(start_log)
    return {
        "name": name,
        "hosts": [f"{name}.localhost"],
        "command": fast_command(name, **env),
        "stop_grace": "1s",
        **over,
    }


class LeanWakeproxy(Wakeproxy):
    """`wakeproxy serve` whose access lines are tallied, not kept: a soak logs thousands.

    `statuses` counts access lines by status; `server_errors` keeps every access line
    with a 5xx status, whole, for the failure message; `held` keeps (app, start, end) in
    epoch seconds for each request that was held.
    """

    def __init__(self, tmp: Path, config: dict[str, Any]) -> None:
        super().__init__(tmp, config)
        self.statuses: collections.Counter[int] = collections.Counter()
        self.server_errors: list[dict[str, Any]] = []
        self.held: list[tuple[str, float, float]] = []
        self._tail: collections.deque[str] = collections.deque(maxlen=400)
        self._lock = threading.Lock()

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self._tail.append(line)
                if '"event": "request"' in line or '"event":"request"' in line:
                    entry = _json(line)
                    status = int(entry.get("status", 0)) if entry else 0
                    self.statuses[status] += 1
                    if status >= 500 and entry is not None:
                        self.server_errors.append(entry)
                    if entry is not None and entry.get("held_ms") is not None:
                        end = epoch(entry["timestamp"])
                        start = end - float(entry["duration_ms"]) / 1000.0
                        self.held.append((str(entry["app"]), start, end))
                    continue
                entry = _json(line)
                if entry is not None:
                    self.logs.append(entry)

    def output(self) -> str:
        with self._lock:
            return "".join(self._tail)

    def stopping_windows(self) -> dict[str, list[tuple[float, float]]]:
        """Per app, each (start, end) in epoch seconds of its stops, from the lifecycle log."""
        windows: dict[str, list[tuple[float, float]]] = collections.defaultdict(list)
        began: dict[str, float] = {}
        with self._lock:
            entries = list(self.logs)
        for e in entries:
            if e.get("event") == "putting app to sleep":
                began[e["app"]] = epoch(e["timestamp"])
            elif e.get("event") == "app asleep" and e.get("app") in began:
                windows[e["app"]].append((began.pop(e["app"]), epoch(e["timestamp"])))
        return windows

    def held_while_stopping(self) -> int:
        """Requests that arrived while their app was being stopped (then woke it again)."""
        windows = self.stopping_windows()
        with self._lock:
            held = list(self.held)
        return sum(
            1 for app, start, _ in held
            if any(a <= start <= b for a, b in windows.get(app, ()))
        )


def epoch(timestamp: str) -> float:
    return datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def _json(line: str) -> dict[str, Any] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry if isinstance(entry, dict) else None


@pytest.fixture
def start_lean(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], LeanWakeproxy]]:
    """Start a LeanWakeproxy; SIGTERMed (and its clean exit checked) at teardown."""
    started: list[LeanWakeproxy] = []

    def start(config: dict[str, Any]) -> LeanWakeproxy:
        wp = LeanWakeproxy(tmp_path, config)
        started.append(wp)
        return wp.start()

    yield start
    for wp in started:
        wp.terminate()


# -- /metrics -----------------------------------------------------------------------------

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """One /metrics scrape: samples keyed by name, each a list of (labels, value)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for m in _SAMPLE.finditer(text):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            self.samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))

    def total(self, name: str, **match: str) -> float:
        return sum(
            v for labels, v in self.samples.get(name, [])
            if all(labels.get(k) == want for k, want in match.items())
        )

    def series(self) -> set[str]:
        """Every series as `name{labels}`: what a Prometheus server would store."""
        return {
            name + json.dumps(labels, sort_keys=True)
            for name, rows in self.samples.items() for labels, _ in rows
        }


async def scrape(session: aiohttp.ClientSession, wp: Wakeproxy) -> Metrics:
    async with session.get(wp.admin + "/metrics") as r:
        assert r.status == 200
        return Metrics(await r.text())


# -- processes ----------------------------------------------------------------------------


def started_pids(start_log: Path) -> list[int]:
    if not start_log.exists():
        return []
    return [int(x) for x in start_log.read_text().split()]


def running_with_marker(marker: str) -> list[int]:
    """PIDs of live (not zombie) processes whose environment holds `marker`."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if marker.encode() in environ:
            found.append(int(name))
    return pids_alive(found)


# -- figures for the README -----------------------------------------------------------------

FIGURES: dict[str, list[str]] = collections.defaultdict(list)


def figure(section: str, text: str) -> None:
    """Note a figure (requests sent, faults injected…) for the end-of-run summary."""
    FIGURES[section].append(text)


def print_figures(terminalreporter: Any, section: str) -> None:
    lines = FIGURES.get(section)
    if lines:
        terminalreporter.write_sep("-", f"{section} figures")
        for line in lines:
            terminalreporter.write_line(line)
