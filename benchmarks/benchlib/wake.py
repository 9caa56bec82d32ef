"""The wake row: the app's own start-up time vs wakeproxy's first byte for a sleeping app.

Owns both timers. Start-up: spawn the app command ourselves, poll its port every 1 ms
and time the first byte of its first answer. Wake: put the app to sleep through the
admin API, then time one GET through wakeproxy until its first byte. Both include a TCP
connect and one request, so the difference is what wakeproxy adds to a cold start.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib.procs import Processes, free_port
from benchlib.wakeproxy import Wakeproxy

POLL_SECONDS = 0.001


class WakeMeasureFailed(Exception):
    """The app never answered, or answered with something other than 200."""


@dataclass
class WakeResult:
    startup_ms: list[float] = field(default_factory=list)
    ttfb_ms: list[float] = field(default_factory=list)

    @property
    def startup_p50(self) -> float:
        return statistics.median(self.startup_ms)

    @property
    def ttfb_p50(self) -> float:
        return statistics.median(self.ttfb_ms)

    @property
    def overhead_p50(self) -> float:
        return self.ttfb_p50 - self.startup_p50

    def to_json(self) -> dict[str, Any]:
        return {
            "samples": len(self.ttfb_ms),
            "startup_ms": [round(x, 3) for x in self.startup_ms],
            "ttfb_ms": [round(x, 3) for x in self.ttfb_ms],
            "startup_p50_ms": round(self.startup_p50, 3),
            "ttfb_p50_ms": round(self.ttfb_p50, 3),
            "overhead_p50_ms": round(self.overhead_p50, 3),
        }


def _get(host: str, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()


def _first_byte(sock: socket.socket, req: bytes, timeout: float) -> bytes:
    """Send `req`, wait for the first bytes of the answer, return them (empty on close)."""
    sock.settimeout(timeout)
    sock.sendall(req)
    return sock.recv(65536)


def _check_status(first: bytes, what: str) -> None:
    if not first.startswith(b"HTTP/1.1 200") and not first.startswith(b"HTTP/1.0 200"):
        line = first.split(b"\r\n", 1)[0][:120]
        raise WakeMeasureFailed(f"{what} answered {line!r}, expected 200")


def app_startup_ms(
    procs: Processes, command: list[str], *, log_path: Path, path: str, timeout: float = 10.0,
) -> float:
    """Spawn `command` with a fresh $PORT; ms until its first byte of a 200, polling every 1 ms."""
    port = free_port()
    req = _get("127.0.0.1", path)
    t0 = time.perf_counter()
    started = procs.start("app start-up probe", command, core=None, log_path=log_path,
                          env={"PORT": str(port)})
    try:
        deadline = t0 + timeout
        while time.perf_counter() < deadline:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.connect(("127.0.0.1", port))
                except OSError:
                    if not started.alive():
                        raise WakeMeasureFailed(
                            f"app command exited with {started.proc.returncode}; see {log_path}"
                        ) from None
                    time.sleep(POLL_SECONDS)
                    continue
                # Listening is not serving (nginx binds before its worker runs): the
                # connection may be reset before an answer; then poll again.
                with contextlib.suppress(ConnectionError):
                    first = _first_byte(sock, req, timeout)
                    if first:
                        elapsed = (time.perf_counter() - t0) * 1000
                        _check_status(first, "the app")
                        return elapsed
            time.sleep(POLL_SECONDS)
        raise WakeMeasureFailed(f"the app did not answer on port {port} within {timeout:.0f}s")
    finally:
        procs.stop(started)


def wakeproxy_ttfb_ms(wp: Wakeproxy, *, app: str, host: str, path: str) -> float:
    """Sleep `app`, then ms from connecting to wakeproxy until the first byte of a 200."""
    wp.sleep_app(app)
    req = _get(host, path)
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", wp.listen_port), timeout=30) as sock:
        first = _first_byte(sock, req, 30)
        elapsed = (time.perf_counter() - t0) * 1000
    if not first:
        raise wp.fail(f"closed the connection without answering GET {path} for sleeping {app}")
    try:
        _check_status(first, "wakeproxy")
    except WakeMeasureFailed as e:
        raise wp.fail(str(e)) from e
    return elapsed


def measure_wake(
    procs: Processes, wp: Wakeproxy, *, command: list[str], app: str, host: str, path: str,
    samples: int, log_path: Path,
) -> WakeResult:
    """Alternate the two timers, `samples` times each, so both see the same machine noise."""
    result = WakeResult()
    for _ in range(samples):
        result.startup_ms.append(app_startup_ms(procs, command, log_path=log_path, path=path))
        result.ttfb_ms.append(wakeproxy_ttfb_ms(wp, app=app, host=host, path=path))
    return result
