"""`wakeproxy app-logs`: an app's own output, followed live through sleeps and wakes.

Real `wakeproxy serve`, a real app printing lines, the real CLI following it; a slow
reader (a socket that stops reading) loses lines with a marker saying how many while a
reader that keeps up gets every one.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.e2e.harness import Wakeproxy, echo_command

TOKEN = "app-logs-test-token"
ASLEEP = "==> app asleep; the stream goes on when it wakes"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wakeproxy", *args], capture_output=True,
                          text=True, timeout=60)


class Follow:
    """`wakeproxy app-logs APP --follow` in a subprocess, its lines collected."""

    def __init__(self, wp: Wakeproxy, app: str, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wakeproxy", "app-logs", app, "--follow",
             "--admin", wp.admin, "--token", TOKEN, *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def wait_for(self, match: Callable[[list[str]], bool], timeout: float = 15.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if match(self.lines):
                    return list(self.lines)
            time.sleep(0.01)
        with self._lock:
            raise AssertionError(f"not seen within {timeout}s; got {self.lines[-20:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def follow() -> Iterator[Callable[..., Follow]]:
    started: list[Follow] = []

    def start(wp: Wakeproxy, app: str, *extra: str) -> Follow:
        f = Follow(wp, app, *extra)
        started.append(f)
        return f

    yield start
    for f in started:
        f.stop()


def get(wp: Wakeproxy, path: str, host: str = "talk.localhost") -> str:
    req = urllib.request.Request(wp.url + path, headers={"Host": host})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return str(resp.read().decode())


def talk_app(start_wakeproxy: Callable[..., Wakeproxy]) -> Wakeproxy:
    return start_wakeproxy({
        "admin_token": TOKEN,
        "apps": [{"name": "talk", "hosts": ["talk.localhost"], "command": echo_command("talk"),
                  "idle_after": "1h"}],
    })


def test_follow_shows_output_through_a_sleep_and_a_wake(start_wakeproxy, follow):
    wp = talk_app(start_wakeproxy)
    f = follow(wp, "talk")
    f.wait_for(lambda lines: lines == [ASLEEP])  # never started yet: it says so

    get(wp, "/say?n=3&tag=first")
    get(wp, "/say?n=2&tag=err&to=stderr")
    lines = f.wait_for(lambda lines: "err 1" in lines)
    assert lines[1].startswith("==> app started (pid ")
    assert lines[-5:] == ["first 0", "first 1", "first 2", "err 0", "err 1"]

    assert cli("sleep", "talk", "--admin", wp.admin, "--token", TOKEN).returncode == 0
    f.wait_for(lambda lines: lines[-1] == ASLEEP)

    get(wp, "/say?n=2&tag=second")  # the same stream goes on when the app wakes
    lines = f.wait_for(lambda lines: lines[-1] == "second 1")
    assert lines.count(ASLEEP) == 2 and sum(x.startswith("==> app started") for x in lines) == 2
    assert f.proc.poll() is None

    # Asleep again, the last lines are still there for a reader that comes later.
    assert cli("sleep", "talk", "--admin", wp.admin, "--token", TOKEN).returncode == 0
    wp.wait_state("talk", "asleep")
    r = cli("app-logs", "talk", "--lines", "4", "--admin", wp.admin, "--token", TOKEN)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-3:] == ["second 0", "second 1", ASLEEP]
    assert len(r.stdout.splitlines()) == 4


def test_app_logs_need_the_token_and_a_known_app(start_wakeproxy):
    wp = talk_app(start_wakeproxy)
    r = cli("app-logs", "talk", "--admin", wp.admin)
    assert r.returncode == 1
    assert "needs Authorization: Bearer <token>" in r.stderr and "HTTP 401" in r.stderr
    r = cli("app-logs", "nope", "--admin", wp.admin, "--token", TOKEN)
    assert r.returncode == 1 and "no app named 'nope' (HTTP 404" in r.stderr
    with pytest.raises(urllib.error.HTTPError) as e:
        req = urllib.request.Request(wp.admin + "/api/v1/apps/talk/logs?lines=many",
                                     headers={"Authorization": f"Bearer {TOKEN}"})
        urllib.request.urlopen(req, timeout=10)
    assert e.value.code == 400 and b"lines must be a whole number from 0 to 1000" in e.value.read()
    r = cli("app-logs", "talk", "--lines", "5000", "--admin", wp.admin, "--token", TOKEN)
    assert r.returncode == 2 and "from 0 to 1000" in r.stderr


def slow_reader(wp: Wakeproxy, app: str) -> socket.socket:
    """A follower that asks for the stream, then reads nothing (tiny receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", wp.admin_port))
    sock.sendall((f"GET /api/v1/apps/{app}/logs?follow=1&lines=0 HTTP/1.1\r\n"
                  f"Host: 127.0.0.1:{wp.admin_port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                  "\r\n").encode())
    return sock


def read_until(sock: socket.socket, needle: bytes, timeout: float = 30.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while needle not in data:
        chunk = sock.recv(1 << 20)
        assert chunk, data[-500:]
        data += chunk
    return data


def test_a_slow_reader_loses_lines_with_a_marker_and_slows_no_one(start_wakeproxy, follow):
    wp = talk_app(start_wakeproxy)
    get(wp, "/")
    fast = follow(wp, "talk", "--lines", "0")
    slow = slow_reader(wp, "talk")
    try:
        # Both followers are subscribed once each saw a line printed after it connected.
        deadline = time.monotonic() + 15
        while not any(x.startswith("ready ") for x in fast.lines):
            assert time.monotonic() < deadline, "the fast reader never subscribed"
            get(wp, "/say?n=1&tag=ready")
            time.sleep(0.1)
        get(wp, "/say?n=1&tag=ready")
        read_until(slow, b"ready 0\n")
        # 100,000 lines of 100 bytes at 50,000 a second: more than a reader's queue and the
        # sockets between it and wakeproxy hold.
        n, tag = 100_000, "burst" + "." * 90
        started = time.monotonic()
        assert get(wp, f"/say?n={n}&tag={tag}&rate=50000") == f"said {n}\n"
        lines = fast.wait_for(lambda lines: bool(lines) and lines[-1] == f"{tag} {n - 1}",
                              timeout=60)
        # The reader that keeps up got every line, in order, and no marker.
        burst = [x for x in lines if x.startswith(tag)]
        assert burst == [f"{tag} {i}" for i in range(n)]
        assert not any("dropped" in x for x in lines)
        assert time.monotonic() - started < 30
        assert get(wp, "/").startswith("hello from talk")  # the data plane still answers
        data = read_until(slow, b" reader)\n")  # the end of the drop marker
        get(wp, "/say?n=1&tag=after")  # then the stream goes on
        data += read_until(slow, b"after 0")
    finally:
        slow.close()
    text = data.decode(errors="replace")
    assert "lines dropped: this reader fell behind (at most 10000 lines wait for one reader)" \
        in text
    dropped = int(text.split(" lines dropped")[0].rsplit("==> ", 1)[1])
    got = text.count(f"\n{tag} ")
    assert dropped > 0 and got + dropped >= n - 1  # what it lost is what the marker says
