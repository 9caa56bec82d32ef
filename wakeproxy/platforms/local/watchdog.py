"""Kills our process groups (apps, and local builds) if wakeproxy dies without stopping them.

A small shell process, started in its own session, reads "+ PGID" / "- PGID" lines from
a pipe only wakeproxy holds open. When that pipe reaches end-of-file — wakeproxy exited,
crashed, or was SIGKILLed — it sends SIGKILL to every group still listed, grandchildren
included. This covers what PR_SET_PDEATHSIG cannot: `/bin/sh -c` does not exec its
command here, so a death signal would reach only the shell and orphan the app.
On a normal shutdown the platform and the builder stop every group themselves first; the
list is then empty. One watchdog serves a platform: the builder gets the platform's.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

log = structlog.get_logger("wakeproxy.local")

# Removal uses the `${x%% pat *}` / `${x#* pat }` split so no process is forked per line.
_SCRIPT = r"""
groups=" "
while read -r op g; do
  case "$op" in
    +) groups="$groups$g " ;;
    -) case "$groups" in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
  esac
done
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
"""


class GroupWatchdog:
    def __init__(self) -> None:
        self._proc: asyncio.subprocess.Process | None = None
        self._groups: set[int] = set()
        self._closed = False  # once closed, never started again (nothing would close it)
        # A wake and a build may both find it dead: one of them starts the new one.
        self._starting = asyncio.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def start(self) -> None:
        """Start it, or start a new one if the last one died; it learns every known group.

        Does nothing once closed."""
        async with self._starting:
            await self._start()

    async def _start(self) -> None:
        if self.running or self._closed:
            return
        if self._proc is not None:
            log.warning("watchdog process died; starting a new one",
                        returncode=self._proc.returncode)
        self._proc = await asyncio.create_subprocess_exec(
            "/bin/sh", "-c", _SCRIPT, "wakeproxy-watchdog",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for wakeproxy must not kill it first
        )
        for pgid in self._groups:
            self._send(f"+ {pgid}\n")

    def add(self, pgid: int) -> None:
        self._groups.add(pgid)
        self._send(f"+ {pgid}\n")

    def remove(self, pgid: int) -> None:
        if pgid in self._groups:
            self._groups.discard(pgid)
            self._send(f"- {pgid}\n")

    def _send(self, line: str) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None or proc.stdin is None:
            return
        if proc.stdin.is_closing():
            return
        proc.stdin.write(line.encode("ascii"))

    async def close(self) -> None:
        self._closed = True
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 5.0)
        except TimeoutError:
            log.warning("watchdog did not exit; killing it", pid=proc.pid)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
