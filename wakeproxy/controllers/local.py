"""The bundled controllers on the local platform, as the admin API and the webhook use them.

Data flow::

    admin API / CLI --build--> LocalBuilder --release dir--> Build
    admin API / CLI --deploy--> LocalDeployer --put_app/swap--> LocalPlatform
                                              --AppsChanged/EndpointsChanged--> Lifecycle
    GitHub --POST /hooks/github--> webhook checks --PullRequestEvent--> ReviewApps
        --> LocalBuilder + LocalDeployer (one worker per review app, newest commit wins)
    builder/deployer/review apps --changed--> StateWriter --> <builds_dir>/state.json
    start(): state.json --> builds, review apps (AppsChanged, asleep), deployed releases

Must never: write the board or the routes (the lifecycle does), or block a webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from wakeproxy.controllers.builder import LocalBuilder, Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.deployer import EventSink, LocalDeployer
from wakeproxy.controllers.errors import (
    BadWebhook,
    ControllerError,
    NotBuildable,
    UnknownApp,
    UnknownBuild,
)
from wakeproxy.controllers.review import ReviewApps, base_of, source_of
from wakeproxy.controllers.state import (
    STATE_FILE,
    ControllerState,
    ReleaseRecord,
    StateStore,
    StateWriter,
)
from wakeproxy.controllers.webhook import Deliveries, parse_pull_request, signature_valid
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.platforms.local.platform import LocalPlatform
from wakeproxy.settings import LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

log = structlog.get_logger("wakeproxy.controllers")


class WebhookRefused(ControllerError):
    """The delivery is not signed with our secret."""


class LocalControllers:
    def __init__(
        self, *, apps: Sequence[LocalApp], review: ReviewSettings | None, builds_dir: Path,
        platform: LocalPlatform, lifecycle: EventSink, board: ReadinessBoard,
        environ: Mapping[str, str], drain: float = 0.5, build_timeout: float = 900.0,
    ) -> None:
        self._apps = {a.policy.name: a for a in apps}
        self._board = board
        self._store = StateStore(builds_dir / STATE_FILE)
        self._writer = StateWriter(self._store, self._snapshot)
        changed = self._changed
        self.builder = LocalBuilder(root=builds_dir, environ=environ, timeout=build_timeout,
                                    changed=changed)
        self.deployer = LocalDeployer(
            platform=platform, lifecycle=lifecycle, board=board, builder=self.builder,
            drain=drain, changed=changed)
        self._secret = review.webhook_secret if review is not None else None
        self.reviews = None if review is None else ReviewApps(
            domain=review.domain, apps=apps, builder=self.builder, deployer=self.deployer,
            changed=changed)
        self._started = False  # nothing is saved before the earlier run's state is loaded
        self._deliveries = Deliveries()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what survives a restart -------------------------------------------------------

    async def start(self) -> None:
        """Bring back an earlier run's builds, review apps and deployed releases (asleep).

        Call once, before serving. Never fails: what cannot be restored is logged.
        """
        state = self._store.load()
        self.builder.restore(state.builds)
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
        for app, records in state.releases.items():
            if not self.deployer.exists(app):
                log.warning("saved release of an app that no longer exists ignored", app=app)
                continue
            known = {b.id: b for b in self.builder.list(app)}
            builds: list[Build] = []
            for r in records:
                path = self.builder.release_path(app, r.build)
                if path is None or str(path) != r.directory or not path.is_dir():
                    log.warning("release directory gone; that release is dropped", app=app,
                                build=r.build, directory=r.directory)
                    continue
                build = known.get(r.build) or _release_only(app, r)
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
            app: tuple(ReleaseRecord(b.id, b.commit, b.release_dir) for b in builds
                       if b.release_dir is not None)
            for app, builds in self.deployer.releases().items()
        }
        reviews = () if self.reviews is None else tuple(
            r for r in self.reviews.records() if self.deployer.exists(r.name))
        return ControllerState(releases=releases, reviews=reviews,
                               builds=self.builder.records())

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
        return source_of(local)

    def build(self, app: str, ref: str, *, deploy: bool = False) -> Build:
        build = self.builder.start(app, self.source(app), ref)
        if deploy:
            task = spawn(self._deploy_when_built(build), name=f"deploy:{build.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return build

    def get_build(self, build_id: str) -> Build:
        build = self.builder.get(build_id)
        if build is None:
            raise UnknownBuild(build_id)
        return build

    async def deploy(self, app: str, build_id: str) -> tuple[Build, str]:
        build = self.get_build(build_id)
        return build, await self.deployer.deploy(app, build)

    async def delete(self, app: str) -> None:
        await self.deployer.delete(app)

    async def _deploy_when_built(self, build: Build) -> None:
        await self.builder.wait(build)
        if build.state is BuildState.SUCCEEDED:
            try:
                await self.deployer.deploy(build.app, build)
            except ControllerError as e:
                log.warning("deploy after build failed", build=build.id, reason=e.message)

    # -- the GitHub webhook ------------------------------------------------------------

    def webhook(self, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
        """Check and queue one delivery; returns what was done (for the 202 body).

        Raises WebhookRefused (bad or missing signature, or review apps not configured)
        and BadWebhook (a signed delivery that is not a usable pull_request event).
        """
        if self._secret is None or self.reviews is None:
            raise WebhookRefused("review apps are not configured (review_apps in the config)")
        if not signature_valid(self._secret, body, headers.get("X-Hub-Signature-256")):
            raise WebhookRefused("the X-Hub-Signature-256 signature does not match")
        delivery = headers.get("X-GitHub-Delivery", "").strip()
        if not delivery:
            raise BadWebhook("X-GitHub-Delivery is required")
        if not self._deliveries.first_time(delivery):
            return {"delivery": delivery, "ignored": "already received"}
        kind = headers.get("X-GitHub-Event", "")
        if kind != "pull_request":
            return {"delivery": delivery, "ignored": f"event {kind or '(none)'} not handled"}
        event = parse_pull_request(body, delivery)
        names = self.reviews.submit(event)
        if not names:
            why = (f"action {event.action} not handled" if event.action not in
                   ("opened", "reopened", "synchronize", "closed")
                   else f"no app builds {event.repository}")
            return {"delivery": delivery, "ignored": why}
        return {"delivery": delivery, "action": event.action, "review_apps": names}

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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
