"""Wakes nobody asked for (a schedule's window opens, a never-sleep app is found asleep):
started in the background, one at a time per app, their failures logged, not raised.

Must never: decide which app to wake (its callers do), or hold a wake's failure back from
the lifecycle, which reports and counts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog

from wakeproxy.controlplane.tasks import spawn

log = structlog.get_logger("wakeproxy.wakes")


class UnaskedWakes:
    def __init__(self, wake: Callable[[str], Awaitable[None]], *, kind: str) -> None:
        self._wake = wake
        self._kind = kind  # in task names and log lines: "scheduled", "never-sleep"
        self._tasks: dict[str, asyncio.Task[bool]] = {}

    def running(self, app: str) -> bool:
        return app in self._tasks

    async def settled(self, app: str) -> None:
        """Until the wake of `app` under way (if any) has ended and been accounted for."""
        task = self._tasks.get(app)
        if task is not None:
            await asyncio.wait([task])

    def start(self, app: str, done: Callable[[str, bool], None] | None = None) -> None:
        """Wake `app` unless its wake is under way; `done(app, woke)` is called after."""
        if app in self._tasks:
            return
        task = spawn(self._quietly(app), name=f"{self._kind}-wake:{app}")
        self._tasks[app] = task

        def finished(t: asyncio.Task[bool]) -> None:
            if self._tasks.get(app) is t:
                del self._tasks[app]
            if done is not None and not t.cancelled():
                done(app, t.result())

        task.add_done_callback(finished)

    async def _quietly(self, app: str) -> bool:
        try:
            await self._wake(app)
        except Exception as e:  # a failed wake is the lifecycle's to report and count
            log.warning(f"{self._kind} wake failed", app=app, error=str(e) or repr(e))
            return False
        return True

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
