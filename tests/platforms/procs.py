"""Helpers for tests that run real app processes: commands, pids, and leftover checks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.settings import LocalApp

MARK = "WAKEPROXY_TEST_MARK"
APPSERVER = Path(__file__).with_name("appserver.py")
PY = shlex.quote(sys.executable)


def server_command(*args: str, count: Path | None = None) -> str:
    """Shell command running the test app server; each start appends a line to `count`."""
    prefix = f"echo started >> {shlex.quote(str(count))}; " if count is not None else ""
    quoted = " ".join(shlex.quote(a) for a in args)
    return f"{prefix}exec {PY} {shlex.quote(str(APPSERVER))} {quoted}"


def local_app(
    name: str, command: str, *, stop_grace: float = 5.0, env: dict[str, str] | None = None,
    cwd: str | None = None, **policy: object,
) -> LocalApp:
    return LocalApp(
        policy=AppPolicy(name=name, hosts=(f"{name}.localhost",), **policy),  # type: ignore[arg-type]
        command=command, cwd=cwd, env=env or {}, stop_grace=stop_grace,
    )


def starts(count: Path) -> int:
    return len(count.read_text().splitlines()) if count.exists() else 0


def read_pid(path: Path) -> int:
    return int(path.read_text())


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie is dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


async def wait_dead(*pids: int, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids):
        assert time.monotonic() < deadline, f"still running: {[p for p in pids if alive(p)]}"
        await asyncio.sleep(0.01)


def _has_text(path: Path) -> bool:
    try:
        return bool(path.read_text())
    except FileNotFoundError:
        return False


async def wait_file(path: Path, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not _has_text(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.005)


async def http_get(endpoint: Endpoint, path: str = "/") -> tuple[int, str]:
    async with aiohttp.ClientSession() as s, s.get(f"http://{endpoint}{path}") as r:
        return r.status, await r.text()


def marked_pids(mark: str) -> list[int]:
    """Live processes whose environment carries this test's mark (zombies have none)."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        if needle in env.split(b"\0"):
            found.append(int(name))
    return found


@pytest.fixture(autouse=True)
def no_leftover_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Every process a test starts inherits a mark; none may be alive after the test."""
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)
    yield mark
    deadline = time.monotonic() + 3.0
    left = marked_pids(mark)
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = marked_pids(mark)
    described = {}
    for pid in left:
        with contextlib.suppress(OSError):
            described[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes outlived the test: {described}"
