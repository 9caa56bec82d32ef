"""Local deploys: switch an app to a built release, add apps and delete them at runtime.

A deploy of an asleep app only changes what its next wake runs: it stays asleep. A deploy
of an awake app starts the new release beside the old one, waits until it answers,
routes to it, lets requests already sent to the old one finish (`drain`), then stops the
old one: no request is refused on the way. The board and the routes change only through
the lifecycle (`apply` of platform events), their one writer; deploys of one app run one
at a time. `changed` is called whenever an app's releases change (so they can be saved);
`restore` brings back an earlier run's releases, asleep. Must never: build, or write the
board or the routes itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Protocol

import structlog

from wakeproxy.controllers.builder import LocalBuilder
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.errors import DeployFailed, NotDeployable, UnknownApp
from wakeproxy.controlplane.platform import (
    AppsChanged,
    EndpointsChanged,
    PlatformEvent,
    WakeFailed,
)
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import Phase, ReadinessBoard
from wakeproxy.model.routes import HostConflict, RouteTable
from wakeproxy.platforms.local.platform import LocalPlatform
from wakeproxy.settings import LocalApp

log = structlog.get_logger("wakeproxy.deploys")

_KEEP_RELEASES = 2  # the live release and the one before it stay on disk


class EventSink(Protocol):
    """The board's writer: applies a platform event to the board and the routes at once."""

    def apply(self, event: PlatformEvent) -> None: ...


class LocalDeployer:
    def __init__(
        self, *, platform: LocalPlatform, lifecycle: EventSink, board: ReadinessBoard,
        builder: LocalBuilder, drain: float = 0.5, changed: Callable[[], None] | None = None,
    ) -> None:
        self._changed = changed or (lambda: None)
        self._platform = platform
        self._lifecycle = lifecycle
        self._board = board
        self._builder = builder
        self._drain = drain
        self._locks: dict[str, asyncio.Lock] = {}
        self._live: dict[str, list[Build]] = {}  # app → deployed builds, newest last

    def live(self, app: str) -> Build | None:
        builds = self._live.get(app)
        return builds[-1] if builds else None

    def releases(self) -> dict[str, tuple[Build, ...]]:
        """Each app's kept releases, oldest first (the last one is deployed)."""
        return {app: tuple(builds) for app, builds in self._live.items() if builds}

    def restore(self, app: str, builds: Sequence[Build]) -> None:
        """Make `builds` (oldest first) the app's releases again, the last one deployed;
        the app stays asleep and its next wake runs that release."""
        template = self._platform.definition(app)
        if template is None or not builds or builds[-1].release_dir is None:
            return
        self._platform.put_app(replace(template, cwd=builds[-1].release_dir),
                               release=builds[-1].id)
        self._live[app] = list(builds[-_KEEP_RELEASES:])

    # -- the app set -------------------------------------------------------------------

    def exists(self, app: str) -> bool:
        return self._board.get(app) is not None and self._platform.definition(app) is not None

    def add_app(self, local: LocalApp) -> None:
        """Add (or redefine) an app; it routes at once and wakes once it has a release.

        Raises DeployFailed when one of its hosts belongs to another app.
        """
        policies = [s.policy for s in self._board if s.name != local.policy.name]
        self._install([*policies, local.policy])
        self._platform.put_app(local)

    async def delete(self, app: str) -> None:
        """Unroute `app`, stop its process, cancel its builds, delete its releases."""
        if self._board.get(app) is None and self._platform.definition(app) is None:
            raise UnknownApp(app)
        async with self._lock(app):
            # Routes first: from this step on the host answers 404, nothing new reaches it.
            self._install(s.policy for s in self._board if s.name != app)
            await self._platform.remove_app(app)
            await self._builder.discard(app)
            self._live.pop(app, None)
        self._locks.pop(app, None)
        self._changed()
        log.info("app deleted", app=app)

    def _install(self, policies: Iterable[AppPolicy]) -> None:
        policies = tuple(policies)
        try:
            RouteTable.build((p.name, p.hosts) for p in policies)
        except HostConflict as e:
            raise DeployFailed(str(e)) from None
        self._lifecycle.apply(AppsChanged(policies))

    # -- deploys -----------------------------------------------------------------------

    async def deploy(self, app: str, build: Build) -> str:
        """Make `build` the app's release; returns what happened in words.

        Raises UnknownApp, NotDeployable (the build is not a succeeded build of `app`) or
        DeployFailed (the new release did not answer; the old one keeps serving).
        """
        if build.app != app:
            if self._platform.definition(app) is None or self._board.get(app) is None:
                raise UnknownApp(app)
            raise NotDeployable(f"build {build.id} is a build of {build.app}, not of {app}")
        return await self._deploy(app, build)

    async def promote(self, app: str, target: str) -> tuple[Build, str]:
        """Deploy the release `app` runs, the very build directory, onto `target` (the
        next stage), with the same swap as a deploy; returns the build and what happened.

        Raises UnknownApp, NotDeployable (nothing deployed on `app`) or DeployFailed.
        """
        if self._platform.definition(app) is None or self._board.get(app) is None:
            raise UnknownApp(app)
        build = self.live(app)
        if build is None:
            raise NotDeployable(f"{app} has no release deployed to promote")
        return build, await self._deploy(target, build)

    async def _deploy(self, app: str, build: Build) -> str:
        template = self._platform.definition(app)
        if template is None or self._board.get(app) is None:
            raise UnknownApp(app)
        if build.state is BuildState.SUCCEEDED and build.release_dir is None:
            raise NotDeployable(f"build {build.id} has no release directory any more")
        if build.state is not BuildState.SUCCEEDED or build.release_dir is None:
            raise NotDeployable(f"build {build.id} is {build.state.value}; only a succeeded "
                                "build can be deployed")
        async with self._lock(app):
            previous = self._platform.release(app)
            self._platform.put_app(replace(template, cwd=build.release_dir), release=build.id)
            try:
                outcome = await self._switch(app, build)
            except DeployFailed:
                # The old process keeps serving; its next wake must run it again too.
                self._platform.put_app(template, release=previous)
                raise
            build.deployed_at = time.time()
            self._keep(app, build)
        self._changed()
        log.info("deployed", app=app, build=build.id, commit=build.commit, outcome=outcome)
        return outcome

    async def _switch(self, app: str, build: Build) -> str:
        while True:
            state = self._board.get(app)
            if state is None:
                raise UnknownApp(app)
            if state.phase is Phase.ASLEEP:
                return "asleep; its next wake runs the new release"
            if self._platform.running_release(app) == build.id:
                return "running the new release"
            if state.phase is not Phase.AWAKE:  # waking or stopping: deploy on the outcome
                changed = state.changed()
                async with asyncio.timeout(state.policy.wake_timeout + 5.0):
                    await changed.wait()
                continue

            async def routed(endpoint: Endpoint) -> None:
                self._lifecycle.apply(EndpointsChanged(app, (endpoint,)))
                await asyncio.sleep(self._drain)  # requests sent to the old one finish

            try:
                swapped = await self._platform.swap(
                    app, routed, timeout=state.policy.wake_timeout)
            except (WakeFailed, TimeoutError) as e:
                reason = getattr(e, "reason", None) or str(e) or "not ready in time"
                raise DeployFailed(f"the new release of {app} did not answer ({reason}); "
                                   "the previous one keeps serving") from None
            if swapped:
                return "switched with no downtime"
            # Its process went away under us; the board learns of it in a moment.
            await asyncio.sleep(0.05)

    def _keep(self, app: str, build: Build) -> None:
        builds = [b for b in self._live.get(app, []) if b is not build] + [build]
        self._live[app] = builds[-_KEEP_RELEASES:]
        for old in builds[:-_KEEP_RELEASES]:
            # A promoted release is one directory kept by two stages: removed once neither
            # keeps it.
            if not any(old in kept for kept in self._live.values()):
                self._builder.remove_release(old)

    def _lock(self, app: str) -> asyncio.Lock:
        lock = self._locks.get(app)
        if lock is None:
            lock = self._locks[app] = asyncio.Lock()
        return lock
