"""The wake-storm row: N concurrent requests to a sleeping, slow-starting app.

Owns the storm's client (N non-blocking sockets on one selector, stdlib only) and what
it checks: every request answered 200, the app started once, and wakeproxy's resident
memory per held request (its RSS while all N are held minus its RSS just before, / N).
The app (`storm`) sleeps for a few seconds before it listens, so the requests stay held
long enough to be counted and weighed. Never measures anything but wakeproxy's process.
"""

from __future__ import annotations

import selectors
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib.procs import rss_kib
from benchlib.wakeproxy import Wakeproxy

HELD_FAMILY = "wakeproxy_held_requests"


class StormFailed(Exception):
    """The storm could not be run at all (wakeproxy refused connections, never held them)."""


@dataclass
class StormResult:
    requests: int
    ok: int  # answered 200
    other: dict[str, int]  # anything else: status line or "no answer" → count
    starts: int  # times the app's command ran
    held_seen: int  # most requests wakeproxy reported held at once
    rss_before_kib: int
    rss_held_kib: int
    startup_delay_s: float
    first_answer_s: float  # from the last request sent to the first answer
    last_answer_s: float  # … to the last answer

    @property
    def per_held_bytes(self) -> float:
        """RSS growth per request, weighed when the most requests were held at once."""
        return (self.rss_held_kib - self.rss_before_kib) * 1024 / max(self.held_seen, 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests, "ok": self.ok, "other": self.other,
            "starts": self.starts, "held_seen": self.held_seen,
            "rss_before_kib": self.rss_before_kib, "rss_held_kib": self.rss_held_kib,
            "per_held_bytes": round(self.per_held_bytes),
            "startup_delay_s": self.startup_delay_s,
            "first_answer_s": round(self.first_answer_s, 3),
            "last_answer_s": round(self.last_answer_s, 3),
        }


class _Client:
    __slots__ = ("buf", "done", "sock", "status")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""
        self.done = False
        self.status = ""

    def complete(self) -> bool:
        """Whether `buf` holds a whole response (head plus Content-Length body)."""
        end = self.buf.find(b"\r\n\r\n")
        if end == -1:
            return False
        head = self.buf[:end].decode("latin-1")
        self.status = head.split("\r\n", 1)[0]
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        return len(self.buf) >= end + 4 + length


def run_storm(
    wp: Wakeproxy, *, app: str, host: str, path: str, n: int, starts_file: Path,
    startup_delay: float, timeout: float = 60.0,
) -> StormResult:
    """Send `n` GETs at once to sleeping `app`, weigh them while held, collect the answers."""
    rss_before = rss_kib(wp.pid) or 0
    req = f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    sel = selectors.DefaultSelector()
    clients: list[_Client] = []
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", wp.listen_port))
            c = _Client(sock)
            clients.append(c)
            sel.register(sock, selectors.EVENT_WRITE, c)
        unsent = n
        deadline = time.monotonic() + timeout
        while unsent and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                try:
                    c.sock.sendall(req)  # 40 bytes into an empty send buffer
                except OSError as e:
                    raise StormFailed(f"wakeproxy refused a storm connection: {e}") from e
                sel.modify(c.sock, selectors.EVENT_READ, c)
                unsent -= 1
        sent_at = time.monotonic()
        if unsent:
            raise StormFailed(f"{unsent} of {n} storm connections never opened")
        held_seen, rss_held = _weigh_while_held(wp, app, n, deadline)
        first = last = 0.0
        pending = n
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                try:
                    data = c.sock.recv(65536)
                except OSError:
                    data = b""
                c.buf += data
                if not data or c.complete():
                    c.done = True
                    sel.unregister(c.sock)
                    pending -= 1
                    last = time.monotonic() - sent_at
                    first = first or last
    finally:
        for c in clients:
            c.sock.close()
        sel.close()
    ok = 0
    other: dict[str, int] = {}
    for c in clients:
        if c.done and c.status.startswith("HTTP/1.1 200"):
            ok += 1
        else:
            what = c.status or "no answer"
            other[what] = other.get(what, 0) + 1
    return StormResult(
        requests=n, ok=ok, other=other, starts=_count_lines(starts_file), held_seen=held_seen,
        rss_before_kib=rss_before, rss_held_kib=rss_held, startup_delay_s=startup_delay,
        first_answer_s=first, last_answer_s=last,
    )


def _weigh_while_held(wp: Wakeproxy, app: str, n: int, deadline: float) -> tuple[int, int]:
    """Poll the held gauge until all `n` are held; then wakeproxy's RSS. (most held, RSS)."""
    most = 0
    rss = 0
    while time.monotonic() < deadline:
        held = int(wp.gauge(HELD_FAMILY, app) or 0)
        if held > most:
            most = held
            rss = rss_kib(wp.pid) or 0  # the heaviest moment seen so far
        if held >= n:
            return most, rss
        if most and held < most:
            break  # the app is up and releasing: the peak has passed
        time.sleep(0.02)
    if not most:
        raise StormFailed(f"wakeproxy never reported a held request for {app}")
    return most, rss


def _count_lines(path: Path) -> int:
    try:
        return len(path.read_text().split())
    except OSError:
        return 0
