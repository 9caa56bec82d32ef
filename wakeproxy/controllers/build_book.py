"""The builds a builder remembers and the tasks running them: look up, cancel, wait, close.

Shared by the local and the Kubernetes builder, which add how a build runs. Keeps at most
`KEEP_BUILDS` builds, forgetting the oldest finished ones first, and the caps of
`build_limits`: a build asked for while `max_queued` wait is refused (CapReached), each
log keeps its last `log_bytes`, and all logs together at most `log_bytes_total` in
memory (the oldest finished ones are dropped, to be read back from where the builder
keeps them: `_evicted`). Must never: run a build or decide its outcome.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict

import structlog

from wakeproxy.controllers.builds import Build, BuildLog, BuildState
from wakeproxy.controllers.errors import CapReached
from wakeproxy.model.stats import CAP_LOG_BYTES, CAP_LOG_BYTES_TOTAL, CAP_QUEUED_BUILDS, CapStats
from wakeproxy.settings import BuildLimits

log = structlog.get_logger("wakeproxy.builds")

KEEP_BUILDS = 500  # finished builds remembered for the API (oldest forgotten first)


class BuildBook:
    def __init__(self, limits: BuildLimits | None = None, caps: CapStats | None = None, *,
                 platform: str = "local", concurrency: int | None = None) -> None:
        self._builds: OrderedDict[str, Build] = OrderedDict()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._limits = limits or BuildLimits()
        self._caps = caps or CapStats()
        # Builds running at once; the subclass's slots hold to it.
        self._concurrency = concurrency or self._limits.running(platform)

    def _admit(self, app: str) -> None:
        """Refuse one more build while `max_queued` wait for a slot. Raises CapReached."""
        cap = self._limits.max_queued
        states = [b.state for b in self._builds.values()]
        active = states.count(BuildState.QUEUED) + states.count(BuildState.RUNNING)
        if active - self._concurrency >= cap:  # queued ones a free slot takes do not wait
            self._caps.refused(CAP_QUEUED_BUILDS)
            log.warning("build refused: too many builds waiting", app=app, cap=cap)
            raise CapReached(CAP_QUEUED_BUILDS, f"{cap} builds are already waiting to run "
                             f"(build_limits.max_queued): build {app} again later")

    def _new_log(self) -> BuildLog:
        return BuildLog(self._limits.log_bytes,
                        dropped=lambda n: self._caps.dropped(CAP_LOG_BYTES, n))

    def _trim_logs(self) -> None:
        """Keep all logs within `log_bytes_total`: drop the oldest finished ones first."""
        total = sum(b.log.size for b in self._builds.values())
        for build in list(self._builds.values()):
            if total <= self._limits.log_bytes_total:
                return
            if build.state.finished and build.log.closed and build.log.size:
                freed = build.log.evict()
                total -= freed
                self._caps.dropped(CAP_LOG_BYTES_TOTAL, freed)
                self._evicted(build)

    def _evicted(self, build: Build) -> None:
        """A finished build's log left memory: read it back from elsewhere when asked."""

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
