"""Every process the benchmark starts: spawn (optionally pinned), wait, stop by PID.

Owns the registry of started processes and stops each of them at the end, also on
Ctrl-C. Never signals a process it did not start itself, or one that a script it
started recorded in the run's own pid directory.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


class StartFailed(Exception):
    """A process under test did not come up; the message carries its log tail."""


@dataclass
class Started:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def free_port() -> int:
    """A port nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


def rss_kib(pid: int) -> int | None:
    """Resident set size of one process from /proc/PID/status, in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time one process has used so far, from /proc/PID/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    try:  # utime and stime are fields 14 and 15; 12 and 13 after the name and state
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


def _stats() -> list[tuple[int, list[str]]]:
    """(pid, fields after the command name) of every process: state, ppid, pgrp, ..."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces or parentheses; fields resume after the last ')'.
        out.append((int(entry), stat[stat.rfind(")") + 2 :].split()))
    return out


def children(pid: int) -> list[int]:
    """Direct children of `pid`, found by scanning /proc (works without CONFIG_PROC_CHILDREN)."""
    return [p for p, f in _stats() if len(f) > 1 and f[1] == str(pid)]


def group_running(pgid: int) -> bool:
    """True while a process of group `pgid` still runs (zombies awaiting a reaper don't count)."""
    return any(len(f) > 2 and f[2] == str(pgid) and f[0] not in ("Z", "X") for _, f in _stats())


def is_running(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :][:1] not in ("Z", "X", "")


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def wait_for_port(host: str, port: int, timeout: float, owner: Started | None = None) -> None:
    """Return once `host:port` accepts a TCP connection; raise StartFailed otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if owner is not None and not owner.alive():
            raise StartFailed(
                f"{owner.name} exited with code {owner.proc.returncode} before listening on "
                f"{host}:{port}; last lines of {owner.log_path}:\n{log_tail(owner.log_path)}"
            )
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.01)
    who = owner.name if owner else "nothing"
    tail = f"; last lines of {owner.log_path}:\n{log_tail(owner.log_path)}" if owner else ""
    raise StartFailed(f"{who} did not listen on {host}:{port} within {timeout:.0f}s{tail}")


def _signal_group(pgid: int, sig: int) -> bool:
    """Signal a process group we created; False when it no longer exists."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class Processes:
    """The registry: `start` spawns in a new session, `stop_all` ends every one by PID."""

    def __init__(self, *, pin: bool, pid_dir: Path) -> None:
        self.pin = pin
        # Scripts started indirectly (by wakeproxy) write their PID here so that even an
        # app orphaned by a crashed proxy is found and stopped at the end.
        self.pid_dir = pid_dir
        self._started: list[Started] = []

    def pinned(self, argv: Sequence[str], core: int | None) -> list[str]:
        if core is None or not self.pin:
            return list(argv)
        return ["taskset", "-c", str(core), *argv]

    def start(
        self, name: str, argv: Sequence[str], *, core: int | None, log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> Started:
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                self.pinned(argv, core), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, env=full_env, start_new_session=True,
            )
        started = Started(name, proc, log_path)
        self._started.append(started)
        return started

    def stop(self, started: Started, grace: float = 10.0) -> None:
        """SIGTERM the process's group (its own session, so only what it spawned), then SIGKILL."""
        deadline = time.monotonic() + grace
        if started.alive():
            _signal_group(started.pid, signal.SIGTERM)
            try:
                started.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                _signal_group(started.pid, signal.SIGKILL)
                started.proc.wait(timeout=5)
        # The group may outlive its leader (an nginx master under a `sh -c` that exited
        # first): give it the rest of the grace period, then kill what is left.
        while group_running(started.pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        _signal_group(started.pid, signal.SIGKILL)
        if started in self._started:
            self._started.remove(started)

    def stop_all(self) -> None:
        for started in reversed(list(self._started)):
            self.stop(started)
        self._stop_recorded(marker=str(self.pid_dir.parent))

    def _stop_recorded(self, marker: str) -> None:
        if not self.pid_dir.is_dir():
            return
        pids = []
        for entry in self.pid_dir.iterdir():
            if entry.name.isdigit():
                pid = int(entry.name)
                # A recorded PID is ours only while its command line names this run's dir.
                if is_running(pid) and marker in cmdline(pid):
                    pids.append(pid)
        victims = pids + [c for p in pids for c in children(p)]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        while any(is_running(p) for p in victims) and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in victims:
            if is_running(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
