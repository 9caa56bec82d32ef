"""The bundled controllers on Kubernetes: build Jobs, server-side-applied deploys, review apps.

Data flow::

    admin API / CLI --build--> KubernetesBuilder --Job--> API (log followed into Build.log)
    admin API / CLI --deploy--> KubernetesDeployer --apply Deployment + Service--> API
        --watch--> KubernetesPlatform --AppsChanged--> lifecycle (routes the app)
    GitHub --POST /hooks/github--> webhook checks --PullRequestEvent--> ReviewApps
        --> KubernetesBuilder + KubernetesDeployer (one worker per review app)

Apps are named as configured (`shop`) or as review apps (`pr-<n>-<app>`); each becomes a
Deployment and Service of that name in `kubernetes.builds.namespace`, which the platform
then routes as `<namespace>.<name>`. Must never: route or scale anything itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

import structlog

from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.cluster_builds import KubernetesBuilder, labels_of
from wakeproxy.controllers.errors import (
    BadWebhook,
    ControllerError,
    NotBuildable,
    NotDeployable,
    UnknownApp,
    UnknownBuild,
)
from wakeproxy.controllers.local import WebhookRefused
from wakeproxy.controllers.review import ReviewApps, base_of, source_of
from wakeproxy.controllers.webhook import Deliveries, parse_pull_request, signature_valid
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import BuildJobs
from wakeproxy.platforms.kubernetes.deploys import Deploys, Release
from wakeproxy.platforms.kubernetes.errors import ApiError
from wakeproxy.settings import KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

log = structlog.get_logger("wakeproxy.controllers")


class KubernetesDeployer:
    """Deploys builds as Deployments + Services; knows the apps it may deploy."""

    def __init__(self, *, deploys: Deploys, builder: KubernetesBuilder) -> None:
        self._deploys = deploys
        self._builder = builder
        self._apps: dict[str, LocalApp] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def exists(self, app: str) -> bool:
        return app in self._apps

    def add_app(self, local: LocalApp) -> None:
        """Know `local` (routed once its first build is deployed and the watch sees it)."""
        self._apps[local.policy.name] = local

    async def deploy(self, app: str, build: Build) -> str:
        definition = self._apps.get(app)
        if definition is None:
            raise UnknownApp(app)
        if build.app != app:
            raise NotDeployable(f"build {build.id} is a build of {build.app}, not of {app}")
        image = self._builder.image(build)
        if image is None:
            raise NotDeployable(f"build {build.id} is {build.state.value}; only a succeeded "
                                "build can be deployed")
        release = Release(name=app, image=image, hosts=definition.policy.hosts,
                          build_id=build.id, labels=labels_of(app), env=definition.env,
                          stop_grace=definition.stop_grace)
        async with self._lock(app):
            try:
                outcome = await self._deploys.apply(release)
            except ApiError as e:
                raise ControllerError(f"the Kubernetes API refused the deploy of {app}: "
                                      f"HTTP {e.status} {e.message}") from None
            build.deployed_at = time.time()
        log.info("deployed", app=app, build=build.id, image=image, outcome=outcome)
        return outcome

    async def delete(self, app: str) -> None:
        """Delete exactly the objects labelled as `app`'s (Deployment, Service, Jobs)."""
        async with self._lock(app):
            try:
                deleted = await self._deploys.delete(app)
            except ApiError as e:
                raise ControllerError(f"the Kubernetes API refused to delete {app}: "
                                      f"HTTP {e.status} {e.message}") from None
        known = self._apps.pop(app, None)
        if known is None and not deleted:
            raise UnknownApp(app)

    def _lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())


class KubernetesControllers:
    """The admin API's and the webhook's controllers on Kubernetes."""

    def __init__(
        self, *, apps: Sequence[LocalApp], review: ReviewSettings | None,
        settings: KubernetesBuilds, api: Callable[[], Api],
    ) -> None:
        self._apps = {a.policy.name: a for a in apps if a.repo is not None}
        self.builder = KubernetesBuilder(jobs=BuildJobs(api, settings),
                                         registry=settings.registry)
        self.deployer = KubernetesDeployer(deploys=Deploys(api, settings), builder=self.builder)
        for app in self._apps.values():
            self.deployer.add_app(app)
        self._secret = review.webhook_secret if review is not None else None
        self.reviews = None if review is None else ReviewApps(
            domain=review.domain, apps=apps, builder=self.builder, deployer=self.deployer)
        self._deliveries = Deliveries()
        self._tasks: set[asyncio.Task[None]] = set()

    def source(self, app: str) -> Source:
        local = self._apps.get(app)
        if local is None and self.reviews is not None and self.deployer.exists(app):
            base = base_of(app)
            local = self._apps.get(base) if base is not None else None
        if local is None:
            raise UnknownApp(app) if not self.deployer.exists(app) else NotBuildable(
                f"{app} is not built from source: give it a repo in the config")
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

    def webhook(self, headers: Mapping[str, str], body: bytes) -> dict[str, object]:
        """As on the local platform: check, dedupe and queue one delivery."""
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
            return {"delivery": delivery, "ignored": f"{event.action} of {event.repository} "
                    "not handled"}
        return {"delivery": delivery, "action": event.action, "review_apps": names}

    async def start(self) -> None:
        """Nothing to restore: the cluster keeps the Deployments; builds are not kept."""

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.reviews is not None:
            await self.reviews.close()
        await self.builder.close()
