"""The builds a builder remembers and the tasks running them: look up, cancel, wait, close.

Shared by the local and the Kubernetes builder, which add how a build runs. Keeps at most
`KEEP_BUILDS` builds, forgetting the oldest finished ones first. Must never: run a build
or decide its outcome.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from wakeproxy.controllers.builds import Build

KEEP_BUILDS = 500  # finished builds remembered for the API (oldest forgotten first)


class BuildBook:
    def __init__(self) -> None:
        self._builds: OrderedDict[str, Build] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def get(self, build_id: str) -> Build | None:
        return self._builds.get(build_id)

    def list(self, app: str | None = None) -> list[Build]:
        """Newest first."""
        return [b for b in reversed(self._builds.values()) if app is None or b.app == app]

    def cancel(self, build_id: str, reason: str) -> None:
        build, task = self._builds.get(build_id), self._tasks.get(build_id)
        if build is None or task is None or build.state.finished:
            return
        build.reason = reason
        # Soon, not now: a task cancelled before its first step never runs its cleanup.
        asyncio.get_running_loop().call_soon(task.cancel)

    async def wait(self, build: Build) -> Build:
        await build.done.wait()
        return build

    async def load_log(self, build: Build) -> None:
        """Fill a build's log when it is kept elsewhere until asked for (nothing here)."""

    async def close(self) -> None:
        for build_id in list(self._tasks):
            self.cancel(build_id, "wakeproxy is shutting down")
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    def _forget_old(self) -> None:
        while len(self._builds) > KEEP_BUILDS:
            oldest = next((b for b in self._builds.values() if b.state.finished), None)
            if oldest is None:
                return
            del self._builds[oldest.id]
            self._forgotten(oldest)

    def _forgotten(self, build: Build) -> None:
        """Drop whatever else is kept of a build no longer remembered."""
