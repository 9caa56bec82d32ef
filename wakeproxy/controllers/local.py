"""The bundled controllers on the local platform, as the admin API and the webhook use them.

Data flow::

    admin API / CLI --build--> LocalBuilder --release dir--> Build
    admin API / CLI --deploy--> LocalDeployer --put_app/swap--> LocalPlatform
                                              --AppsChanged/EndpointsChanged--> Lifecycle
    GitHub --POST /hooks/github--> webhook checks --PullRequestEvent--> ReviewApps
        --> LocalBuilder + LocalDeployer (one worker per review app, newest commit wins)
    builder/deployer/review apps/deliveries --changed--> StateWriter --> state.json
    start(): state.json --> builds, review apps (AppsChanged, asleep), deployed releases,
        webhook delivery ids (a redelivery after a restart is still a duplicate)

Build processes are watched by the platform's watchdog, as app processes are: they die
with wakeproxy even when it is SIGKILLed.

Must never: write the board or the routes (the lifecycle does), or block a webhook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from wakeproxy.controllers.builder import LocalBuilder, Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.deployer import EventSink, LocalDeployer
from wakeproxy.controllers.errors import (
    NotBuildable,
    UnknownApp,
)
from wakeproxy.controllers.front import ControllerFront
from wakeproxy.controllers.promotion import Promotion
from wakeproxy.controllers.review import ReviewApps, base_of, source_of
from wakeproxy.controllers.state import (
    STATE_FILE,
    ControllerState,
    ReleaseRecord,
    StateStore,
    StateWriter,
)
from wakeproxy.controllers.webhook import Deliveries
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.stats import CapStats
from wakeproxy.platforms.local.platform import LocalPlatform
from wakeproxy.platforms.local.sandbox import RunAs
from wakeproxy.settings import BuildLimits, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

log = structlog.get_logger("wakeproxy.controllers")


class LocalControllers(ControllerFront[LocalBuilder, LocalDeployer]):
    def __init__(
        self, *, apps: Sequence[LocalApp], review: ReviewSettings | None, builds_dir: Path,
        platform: LocalPlatform, lifecycle: EventSink, board: ReadinessBoard,
        environ: Mapping[str, str], drain: float = 0.5, build_timeout: float = 900.0,
        config_file: str = "", run_as: RunAs | None = None,
        limits: BuildLimits | None = None, caps: CapStats | None = None,
    ) -> None:
        super().__init__(declared=[a.policy for a in apps], config_file=config_file)
        self._apps = {a.policy.name: a for a in apps}
        self._board = board
        self._store = StateStore(builds_dir / STATE_FILE)
        self._writer = StateWriter(self._store, self._snapshot)
        changed = self._changed
        self._deliveries = Deliveries(changed=changed)  # the front's dedupe, saved
        self.builder = LocalBuilder(root=builds_dir, environ=environ, timeout=build_timeout,
                                    run_as=run_as, limits=limits, caps=caps,
                                    changed=changed, watchdog=platform.watchdog)
        self.deployer = LocalDeployer(
            platform=platform, lifecycle=lifecycle, board=board, builder=self.builder,
            drain=drain, changed=changed)
        self._review = review
        self.reviews = None if review is None else ReviewApps(
            domain=review.domain, apps=apps, builder=self.builder, deployer=self.deployer,
            changed=changed, max_per_repo=review.max_per_repo, caps=caps)
        self._started = False  # nothing is saved before the earlier run's state is loaded

    # -- what survives a restart -------------------------------------------------------

    async def start(self) -> None:
        """Bring back an earlier run's builds, review apps and deployed releases (asleep).

        Call once, before serving. Never fails: what cannot be restored is logged.
        """
        state = self._store.load()
        self.builder.restore(state.builds)
        self._deliveries.restore(state.deliveries)
        reopened: list[str] = []
        if self.reviews is not None:
            reopened = self.reviews.restore(state.reviews)
        elif state.reviews:
            log.warning("saved review apps not reopened: review_apps is not configured",
                        review_apps=[r.name for r in state.reviews])
        deployed = self._restore_releases(state)
        if self._store.loaded:
            known = {b.id for b in self.builder.list()}
            known |= {r.build for rs in state.releases.values() for r in rs}
            self.builder.remove_strays(known)
        self._started = True
        self._writer.changed()
        if state != ControllerState():
            log.info("controller state restored", file=str(self._store.path),
                     builds=len(self.builder.list()), review_apps=reopened, deployed=deployed)

    def _restore_releases(self, state: ControllerState) -> list[str]:
        deployed = []
        known = {b.id: b for b in self.builder.list()}
        for app, records in state.releases.items():
            if not self.deployer.exists(app):
                log.warning("saved release of an app that no longer exists ignored", app=app)
                continue
            builds: list[Build] = []
            for r in records:
                owner = r.built_for or app
                path = self.builder.release_path(owner, r.build)
                if path is None or str(path) != r.directory or not path.is_dir():
                    log.warning("release directory gone; that release is dropped", app=app,
                                build=r.build, directory=r.directory)
                    continue
                # One Build per release, however many stages run it (a promoted one).
                build = known.get(r.build)
                if build is None or build.app != owner:
                    build = known[r.build] = _release_only(owner, r)
                build.release_dir = str(path)
                builds.append(build)
            if builds:
                self.deployer.restore(app, builds)
                deployed.append(app)
        return deployed

    def _changed(self) -> None:
        if self._started:
            self._writer.changed()

    def _snapshot(self) -> ControllerState:
        releases = {
            app: tuple(ReleaseRecord(b.id, b.commit, b.release_dir,
                                     None if b.app == app else b.app) for b in builds
                       if b.release_dir is not None)
            for app, builds in self.deployer.releases().items()
        }
        reviews = () if self.reviews is None else tuple(
            r for r in self.reviews.records() if self.deployer.exists(r.name))
        return ControllerState(releases=releases, reviews=reviews,
                               builds=self.builder.records(),
                               deliveries=self._deliveries.records())

    # -- builds and deploys ------------------------------------------------------------

    def source(self, app: str) -> Source:
        """Where `app` is built from. Raises UnknownApp or NotBuildable."""
        if self._board.get(app) is None:
            raise UnknownApp(app)
        local = self._apps.get(app)
        if local is None and self.reviews is not None:
            base = base_of(app)
            local = self._apps.get(base) if base is not None else None
        if local is None or local.repo is None:
            raise NotBuildable(f"{app} is not built from source: give it a repo in the config")
        return source_of(local, review=local.policy.name != app)

    async def _promote(self, app: str, target: str) -> Promotion:
        build, outcome = await self.deployer.promote(app, target)
        return Promotion(app=app, to=target, build=build.id, commit=build.commit,
                         outcome=outcome)

    async def _live_builds(self) -> dict[str, str]:
        return {app: builds[-1].id for app, builds in self.deployer.releases().items()}

    def _has_release(self, build: Build) -> bool:
        return build.release_dir is not None

    async def close(self) -> None:
        await self._cancel_tasks()
        if self.reviews is not None:
            await self.reviews.close()
        await self.builder.close()
        await self._writer.flush()


def _release_only(app: str, r: ReleaseRecord) -> Build:
    """A deployed release whose build is no longer remembered in the builds list."""
    build = Build(id=r.build, app=app, repo="", ref=r.commit or "", created_at=0.0,
                  state=BuildState.SUCCEEDED, commit=r.commit)
    build.log.close()
    build.done.set()
    return build
