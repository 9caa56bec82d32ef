"""What the admin API and the webhook call, the same on every platform.

Owns the order of operations (build → optionally deploy once built; webhook: check the
signature, dedupe, hand a pull_request event to the review apps). The platform-specific
controllers subclass it and supply the builder, the deployer and where an app is built
from. Must never: build, deploy or route anything itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, Generic, Protocol, TypeVar

import structlog

from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.errors import (
    BadWebhook,
    CapReached,
    ControllerError,
    DeclaredInConfig,
    InvalidRef,
    NotDeployable,
    NotManaged,
    UnknownApp,
    UnknownBuild,
    WebhookRefused,
)
from wakeproxy.controllers.git_refs import BadRef, check_ref
from wakeproxy.controllers.ports import Deployer
from wakeproxy.controllers.promotion import Promotion, Stages
from wakeproxy.controllers.review import ReviewApps
from wakeproxy.controllers.trust import judge
from wakeproxy.controllers.webhook import (
    REVIEW_ACTIONS,
    Deliveries,
    SharedDeliveries,
    body_key,
    parse_pull_request,
    signature_valid,
)
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.apps import AppPolicy
from wakeproxy.settings import ReviewApps as ReviewSettings

log = structlog.get_logger("wakeproxy.controllers")


class FrontBuilder(Protocol):
    def start(self, app: str, source: Source, ref: str, *, deploy: bool = False) -> Build: ...
    def get(self, build_id: str) -> Build | None: ...
    def list(self, app: str | None = None) -> list[Build]: ...
    async def wait(self, build: Build) -> Build: ...
    async def load_log(self, build: Build) -> None: ...


B = TypeVar("B", bound=FrontBuilder)
D = TypeVar("D", bound=Deployer)


class ControllerFront(Generic[B, D]):
    """Subclasses set `builder`, `deployer`, `reviews`, `_review` and define `source`;
    with several replicas, also `_shared`."""

    builder: B
    deployer: D
    reviews: ReviewApps | None
    _review: ReviewSettings | None

    def __init__(self, *, declared: Collection[AppPolicy] = (), config_file: str = "",
                 foreign: Callable[[str], bool] = lambda app: False) -> None:
        # The config file's apps: deleted only by removing them there (DeclaredInConfig).
        self._declared = frozenset(p.name for p in declared)
        # Apps the platform routes but something else deploys (Kubernetes Deployments
        # declared by their annotations): named as such, not as unknown.
        self._foreign = foreign
        self._config_file = config_file or "the config file"
        self._stages = Stages(declared, self._config_file)
        self._deliveries = Deliveries()
        self._shared: SharedDeliveries | None = None  # what the other replicas received
        self._tasks: set[asyncio.Task[None]] = set()

    def source(self, app: str) -> Source:
        """Where `app` is built from. Raises UnknownApp or NotBuildable."""
        raise NotImplementedError

    # -- builds and deploys ------------------------------------------------------------

    def check_ref(self, ref: str) -> str:
        """The ref, stripped, if this platform can build it. Raises InvalidRef."""
        try:
            return check_ref(ref)
        except BadRef as e:
            raise InvalidRef(str(e)) from None

    def build(self, app: str, ref: str, *, deploy: bool = False) -> Build:
        """Start a build of `ref` (as a user gave it). Raises InvalidRef, UnknownApp,
        NotBuildable."""
        ref = self.check_ref(ref)
        build = self.builder.start(app, self.source(app), ref, deploy=deploy)
        if deploy:
            self._deploy_later(build)
        return build

    def get_build(self, build_id: str) -> Build:
        build = self.builder.get(build_id)
        if build is None:
            raise UnknownBuild(build_id)
        return build

    async def read_build(self, build_id: str) -> Build:
        """The build with its log, which a builder may first have to read back (a build
        of an earlier run on Kubernetes: its pod's log, or a note that it is gone)."""
        build = self.get_build(build_id)
        await self.builder.load_log(build)
        return build

    async def deploy(self, app: str, build_id: str) -> tuple[Build, str]:
        build = self.get_build(build_id)
        return build, await self.deployer.deploy(app, build)

    async def deploy_image(self, app: str, image: str) -> str:
        """Run a prebuilt image as `app`: only where apps run as images (Kubernetes)."""
        raise NotDeployable("this platform runs apps from their builds, not from images: "
                            f"build {app} and deploy the build")

    async def promote(self, app: str) -> Promotion:
        """Deploy the release `app` runs onto its next stage (never a rebuild). Raises
        UnknownApp, NotManaged, NoNextStage, NotDeployable (nothing deployed on `app`),
        DeployFailed."""
        if not self.deployer.exists(app):
            raise NotManaged(app) if self._foreign(app) else UnknownApp(app)
        target = self._stages.next_of(app)
        promotion = await self._promote(app, target)
        log.info("promoted", app=app, to=target, build=promotion.build,
                 commit=promotion.commit, image=promotion.image, outcome=promotion.outcome)
        return promotion

    async def _promote(self, app: str, target: str) -> Promotion:
        raise NotImplementedError

    async def delete(self, app: str) -> None:
        """Delete an app made at run time (a review app). Raises DeclaredInConfig for an
        app of the config file, UnknownApp for one that does not exist."""
        if app in self._declared:
            raise DeclaredInConfig(app, self._config_file)
        await self.deployer.delete(app)

    def _deploy_later(self, build: Build,
                      wanted: Callable[[Build], Awaitable[bool]] | None = None) -> None:
        """Deploy `build` once it succeeds and, if `wanted` is given, it says so then."""
        task = spawn(self._deploy_when_built(build, wanted), name=f"deploy:{build.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deploy_when_built(self, build: Build,
                                 wanted: Callable[[Build], Awaitable[bool]] | None) -> None:
        """Deploy `build` once built; whatever happens, `deploy_outcome` or `deploy_error`
        says so in the end (`wakeproxy build --deploy` waits for one of them)."""
        try:
            await self.builder.wait(build)
            if build.state is not BuildState.SUCCEEDED:
                build.deploy_error = f"the build {build.state.value}"
                log.warning("build to deploy did not succeed: not deployed", app=build.app,
                            build=build.id, state=build.state.value, reason=build.reason)
                return
            if wanted is not None and not await wanted(build):
                build.deploy_error = f"a newer build of {build.app} is deployed instead"
                return
            build.deploy_outcome = await self.deployer.deploy(build.app, build)
        except ControllerError as e:
            build.deploy_error = e.message
            log.warning("deploy after build failed", build=build.id, reason=e.message)
        except BaseException:
            build.deploy_error = "wakeproxy stopped before the deploy ended"
            raise

    async def list_builds(self, app: str | None = None) -> list[dict[str, Any]]:
        """The builds as the admin API lists them: each with `live` (the build its app
        runs now; None when the platform cannot tell), `live_on` (every app running it:
        its own and the stages it was promoted to) and `release` (its release still
        exists, so it can be deployed)."""
        builds = self.builder.list(app)
        live = await self._live_builds()
        running: dict[str, list[str]] = {}
        for name, build_id in sorted((live or {}).items()):
            running.setdefault(build_id, []).append(name)
        out = []
        for b in builds:
            view = b.view()
            view["live"] = None if live is None else live.get(b.app) == b.id
            view["live_on"] = running.get(b.id, [])
            view["release"] = self._has_release(b)
            out.append(view)
        return out

    async def _live_builds(self) -> dict[str, str] | None:
        """Each app's live build id; None when it cannot be known now."""
        raise NotImplementedError

    def _has_release(self, build: Build) -> bool:
        raise NotImplementedError

    async def idle(self) -> None:
        """Return once no deploy waits for its build (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _cancel_tasks(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the GitHub webhook ------------------------------------------------------------

    async def webhook(self, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
        """Check and queue one delivery; returns what was done (for the 202 body).

        A duplicate is a delivery whose id this replica remembers or, for one that would
        start work, whose id the shared log (`_shared`: on Kubernetes, every replica's)
        has. When the shared log cannot tell in time, the delivery is accepted: a lost
        pull request event is worse than a rare second build of the same commit.

        A pull request that may not be built (a fork's, see trust.py) is answered 202
        with the reason, logged, and builds nothing.

        Raises CapReached (review_apps.max_per_repo), WebhookRefused (bad or missing
        signature, or review apps not configured)
        and BadWebhook (a signed delivery that is not a usable pull_request event).
        """
        review = self._review
        if review is None or self.reviews is None:
            raise WebhookRefused("review apps are not configured (review_apps in the config)")
        if not signature_valid(review.webhook_secret, body,
                               headers.get("X-Hub-Signature-256")):
            raise WebhookRefused("the X-Hub-Signature-256 signature does not match")
        delivery = headers.get("X-GitHub-Delivery", "").strip()
        if not delivery:
            raise BadWebhook("X-GitHub-Delivery is required")
        already: dict[str, object] = {"delivery": delivery, "ignored": "already received"}
        digest = body_key(body)  # the signature does not cover the delivery id
        if not self._deliveries.first_time(delivery, digest):
            return already
        kind = headers.get("X-GitHub-Event", "")
        if kind != "pull_request":
            return {"delivery": delivery, "ignored": f"event {kind or '(none)'} not handled"}
        event = parse_pull_request(body, delivery)
        if event.action not in REVIEW_ACTIONS:
            return {"delivery": delivery, "ignored": f"action {event.action} not handled"}
        unknown: dict[str, object] = {"delivery": delivery,
                                      "ignored": f"no app builds {event.repository}"}
        if event.repository.lower() not in self.reviews.repositories():
            return unknown
        verdict = judge(event, review)
        if not verdict.build:
            log.warning("pull request not built", delivery=delivery, action=event.action,
                        pull_request=event.number, head_repo=event.head_repo,
                        author=event.author, association=event.association,
                        reason=verdict.reason)
            return {"delivery": delivery, "pull_request": event.number,
                    "ignored": verdict.reason}
        try:
            self.reviews.admit(event)
        except CapReached:
            self._deliveries.forget(delivery, digest)  # "Redeliver" once one has closed
            raise
        # Only deliveries that start work are shared: the rest cost no API call.
        if (self._shared is not None
                and await self._shared.first_time(delivery, digest) is False):
            return already
        names = self.reviews.submit(event)
        if not names:
            return unknown
        return {"delivery": delivery, "action": event.action, "review_apps": names}
