"""The bundled controllers on Kubernetes: build Jobs, server-side-applied deploys, review apps.

Data flow::

    admin API / CLI --build--> KubernetesBuilder --Job--> API (log followed into Build.log)
    admin API / CLI --deploy--> KubernetesDeployer --apply Deployment + Service--> API
        --watch--> KubernetesPlatform --AppsChanged--> lifecycle (routes the app)
    GitHub --POST /hooks/github--> webhook checks --PullRequestEvent--> ReviewApps
        --> KubernetesBuilder + KubernetesDeployer (one worker per review app)
    webhook checks <--read-check-write--> Lease `<lease_name>-deliveries` (LeaseDeliveryLog)

Apps are named as configured (`shop`) or as review apps (`pr-<n>-<app>`); each becomes a
Deployment and Service of that name in `kubernetes.builds.namespace`, which the platform
then routes as `<namespace>.<name>`. An app known before its first deploy (a configured
app with a repo, from start on; a review app, from its pull request's `opened` on) gets
its Deployment at once, asleep and marked not deployed yet (Deploys.reserve), so it
answers 503 "no release deployed yet" with Retry-After, as on the local platform, rather
than 404. On start, the builds list is read back from the build Jobs still in the cluster,
and the open review apps from their Deployments (cluster_reviews.py), so a pull request
opened before a restart is still built on `synchronize`, deleted on `closed`, and built
by `wakeproxy build pr-<n>-<app>`; a build read back still running that was to be
deployed once built (a review app's push, `build --deploy`) is deployed when it succeeds,
unless a newer one of the same app was asked for meanwhile. The ids of webhook deliveries
that start work are shared through a Lease in the lease namespace (delivery_log.py), so a
redelivery is a duplicate whichever replica the Service routes it to, and after a
restart. Must never: route or scale anything itself.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Collection, Sequence

import structlog

from wakeproxy.controllers.builder import Source
from wakeproxy.controllers.builds import Build, BuildState
from wakeproxy.controllers.cluster_builds import KubernetesBuilder, labels_of
from wakeproxy.controllers.cluster_reviews import found_reviews
from wakeproxy.controllers.errors import (
    ControllerError,
    InvalidRef,
    NotBuildable,
    NotDeployable,
    UnknownApp,
)
from wakeproxy.controllers.front import ControllerFront
from wakeproxy.controllers.promotion import Promotion
from wakeproxy.controllers.review import ReviewApps, base_of, source_of
from wakeproxy.controllers.webhook import Deliveries
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.apps import not_deployed
from wakeproxy.model.clock import Clock, SystemClock
from wakeproxy.model.images import moved, nodes_resolve, registry_host
from wakeproxy.model.redact import credentials
from wakeproxy.model.stats import CapStats
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.builds import REFUSED_GRACE, BuildJobs
from wakeproxy.platforms.kubernetes.delivery_log import LeaseDeliveryLog
from wakeproxy.platforms.kubernetes.deploys import Deploys, Release
from wakeproxy.platforms.kubernetes.errors import ApiError
from wakeproxy.settings import BuildLimits, KubernetesBuilds, LocalApp
from wakeproxy.settings import ReviewApps as ReviewSettings

log = structlog.get_logger("wakeproxy.controllers")

# registry/path:tag or @digest; no spaces or shell metacharacters, at most 255 characters.
_IMAGE = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,200}(?::[\w][\w.-]{0,127}|@sha256:[0-9a-f]{64})?")


class KubernetesDeployer:
    """Deploys builds as Deployments + Services; knows the apps it may deploy."""

    def __init__(self, *, deploys: Deploys, builder: KubernetesBuilder) -> None:
        self._deploys = deploys
        self._builder = builder
        self._apps: dict[str, LocalApp] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._reserving: set[asyncio.Task[None]] = set()
        self._started = False

    def exists(self, app: str) -> bool:
        return app in self._apps

    def add_app(self, local: LocalApp) -> None:
        """Know `local`; once started, route it before its first deploy (`reserve`)."""
        self._apps[local.policy.name] = local
        if self._started:
            task = spawn(self.reserve(local.policy.name), name=f"reserve:{local.policy.name}")
            self._reserving.add(task)
            task.add_done_callback(self._reserving.discard)

    async def start(self, present: Collection[str] = ()) -> None:
        """Reserve every app known so far (the API client exists from now on), but those
        `present`: read back from their Deployments just now, they need no reservation,
        and one deleted since (its pull request closed on another replica) must not
        come back."""
        self._started = True
        await asyncio.gather(*(self.reserve(app) for app in list(self._apps)
                               if app not in present))

    async def reserve(self, app: str) -> None:
        """Give `app` its Deployment, marked not deployed yet, unless it has one.

        Why a Deployment and not a route of our own: the platform's watch of Deployments
        is the one source of the app set on every replica, so the app is routed, with the
        reason, on all of them and after restarts, and the first deploy only has to take
        the mark off. A failure is logged: the app is routed at its first deploy anyway.
        """
        async with self._lock(app):
            definition = self._apps.get(app)
            if definition is None:
                return  # deleted meanwhile: reserve nothing
            # Never run: the Deployment stays at zero replicas and a marked app is never
            # woken; the image only names what will be deployed there.
            release = self._release(definition,
                                    f"{self._builder.pull_registry}/{app}:not-deployed")
            reason = not_deployed(app)
            try:
                await self._deploys.reserve(release, reason)
            except ApiError as e:
                log.warning("app not routed before its first deploy: the Kubernetes API "
                            "refused its Deployment", app=app, status=e.status,
                            reason=e.message)

    async def close(self) -> None:
        for task in list(self._reserving):
            task.cancel()
        await asyncio.gather(*self._reserving, return_exceptions=True)

    async def deploy(self, app: str, build: Build) -> str:
        if app not in self._apps:
            raise UnknownApp(app)
        if build.app != app:
            raise NotDeployable(f"build {build.id} is a build of {build.app}, not of {app}")
        await self._builder.load_log(build)  # a build read back: its digest is in its log
        image = self._builder.image(build)
        if image is None and self._builder.has_image(build):
            raise NotDeployable(f"build {build.id}'s image digest could not be read from "
                                "its log now; try again")
        if image is None and build.state is BuildState.SUCCEEDED:
            raise NotDeployable(f"build {build.id}'s image digest is no longer known (its "
                                "log is gone from the cluster): build again")
        if image is None:
            raise NotDeployable(f"build {build.id} is {build.state.value}; only a succeeded "
                                "build can be deployed")
        outcome = await self._apply(app, image, build.id, build.commit or "")
        build.deployed_at = time.time()
        log.info("deployed", app=app, build=build.id, image=image, outcome=outcome)
        return outcome

    async def deploy_image(self, app: str, image: str) -> str:
        """Run an image built elsewhere (a CI pipeline, a public image) as `app`."""
        if app not in self._apps:
            raise UnknownApp(app)
        if not _IMAGE.fullmatch(image):
            raise NotDeployable(f"{image!r} is not an image reference like "
                                "registry.example.com/shop:1.2 or shop@sha256:<digest>")
        # The builds' push address names the pull address's images; any other cluster
        # DNS name would fail every pull (nodes resolve with their own DNS).
        image = moved(image, self._builder.registry, self._builder.pull_registry)
        if not nodes_resolve(registry_host(image)):
            raise NotDeployable(f"{image!r} names registry {registry_host(image)}, a cluster "
                                "DNS name the nodes cannot resolve to pull it: name the "
                                "registry as nodes reach it (kubernetes.builds.pull_registry, "
                                f"{self._builder.pull_registry})")
        outcome = await self._apply(app, image)
        log.info("deployed", app=app, image=image, outcome=outcome)
        return outcome

    @staticmethod
    def _release(definition: LocalApp, image: str, build_id: str = "",
                 commit: str = "") -> Release:
        app = definition.policy.name
        return Release(name=app, image=image, hosts=definition.policy.hosts,
                       build_id=build_id, labels=labels_of(app), commit=commit,
                       env=definition.env, stop_grace=definition.stop_grace)

    async def _apply(self, app: str, image: str, build_id: str = "", commit: str = "") -> str:
        release = self._release(self._apps[app], image, build_id, commit)
        async with self._lock(app):
            try:
                return await self._deploys.apply(release)
            except ApiError as e:
                raise ControllerError(f"the Kubernetes API refused the deploy of {app}: "
                                      f"HTTP {e.status} {e.message}") from None

    async def promote(self, app: str, target: str) -> Promotion:
        """Apply the exact image (and its build and commit) `app`'s Deployment runs onto
        `target`'s Deployment: the same apply, and rollout, as a deploy; never a build."""
        for name in (app, target):
            if name not in self._apps:
                raise UnknownApp(name)
        try:
            running = await self._deploys.running(app)
        except ApiError as e:
            raise ControllerError(f"the Kubernetes API refused to read {app}'s Deployment: "
                                  f"HTTP {e.status} {e.message}") from None
        if running is None:
            raise NotDeployable(f"{app} has no release deployed to promote")
        outcome = await self._apply(target, running.image, running.build_id, running.commit)
        return Promotion(app=app, to=target, build=running.build_id,
                         commit=running.commit or None, outcome=outcome, image=running.image)

    async def delete(self, app: str) -> None:
        """Delete exactly the objects labelled as `app`'s (Deployment, Service, Jobs)."""
        # Forgotten first: a reservation still waiting for the lock then creates nothing.
        known = self._apps.pop(app, None)
        async with self._lock(app):
            try:
                deleted = await self._deploys.delete(app)
            except ApiError as e:
                if known is not None:
                    self._apps[app] = known
                raise ControllerError(f"the Kubernetes API refused to delete {app}: "
                                      f"HTTP {e.status} {e.message}") from None
        if known is None and not deleted:
            raise UnknownApp(app)

    def _lock(self, app: str) -> asyncio.Lock:
        return self._locks.setdefault(app, asyncio.Lock())


class KubernetesControllers(ControllerFront[KubernetesBuilder, KubernetesDeployer]):
    """The admin API's and the webhook's controllers on Kubernetes.

    `lease_namespace` and `lease_name` are the platform's (kubernetes.lease_namespace and
    lease_name): the delivery log is the Lease `<lease_name>-deliveries` there. `foreign`
    says which apps are Deployments someone else deploys (KubernetesPlatform.foreign_app).
    """

    def __init__(
        self, *, apps: Sequence[LocalApp], review: ReviewSettings | None,
        settings: KubernetesBuilds, api: Callable[[], Api], lease_namespace: str,
        lease_name: str, clock: Clock | None = None, config_file: str = "",
        limits: BuildLimits | None = None, caps: CapStats | None = None,
        refused_grace: float = REFUSED_GRACE, foreign: Callable[[str], bool] = lambda app: False,
    ) -> None:
        super().__init__(declared=[a.policy for a in apps], config_file=config_file,
                         foreign=foreign)
        clock = clock or SystemClock()
        self._deliveries = Deliveries(clock=clock)  # this replica's: no API call for these
        self._shared = LeaseDeliveryLog(api=api, namespace=lease_namespace,
                                        lease_name=lease_name, clock=clock)
        self._apps = {a.policy.name: a for a in apps if a.repo is not None}
        hidden = tuple(c for a in self._apps.values() if a.repo
                       for c in credentials(a.repo))
        self.builder = KubernetesBuilder(jobs=BuildJobs(api, settings,
                                                        refused_grace=refused_grace),
                                         registry=settings.registry,
                                         pull_registry=settings.pull_registry, hidden=hidden,
                                         limits=limits, caps=caps)
        self._namespace = settings.namespace
        self._deploys = Deploys(api, settings)
        self.deployer = KubernetesDeployer(deploys=self._deploys, builder=self.builder)
        for app in self._apps.values():
            self.deployer.add_app(app)
        self._review = review
        self.reviews = None if review is None else ReviewApps(
            domain=review.domain, apps=apps, builder=self.builder, deployer=self.deployer,
            max_per_repo=review.max_per_repo, caps=caps)

    def source(self, app: str) -> Source:
        local = self._apps.get(app)
        if local is None and self.reviews is not None and self.deployer.exists(app):
            base = base_of(app)
            local = self._apps.get(base) if base is not None else None
        if local is None:
            raise UnknownApp(app) if not self.deployer.exists(app) else NotBuildable(
                f"{app} is not built from source: give it a repo in the config")
        return source_of(local, review=local.policy.name != app)

    async def deploy_image(self, app: str, image: str) -> str:
        return await self.deployer.deploy_image(app, image)

    async def _promote(self, app: str, target: str) -> Promotion:
        return await self.deployer.promote(app, target)

    async def _live_builds(self) -> dict[str, str] | None:
        # The cluster is the record (a deploy may have come through another replica).
        try:
            return await self._deploys.live_builds()
        except ApiError as e:
            log.warning("live builds unknown: the Kubernetes API refused the list of "
                        "Deployments", status=e.status, reason=e.message)
            return None

    def _has_release(self, build: Build) -> bool:
        return self.builder.has_image(build)

    def check_ref(self, ref: str) -> str:
        """Also refuse what `git ls-remote` cannot resolve here: the build Job is given a
        commit, looked up by name without a clone."""
        ref = super().check_ref(ref)
        if "~" in ref or "^" in ref:
            raise InvalidRef(f"{ref!r} is a revision expression: on Kubernetes a ref is "
                             "resolved with git ls-remote, which knows branches and tags "
                             "only; give a branch, a tag or a full commit id")
        return ref

    async def start(self) -> None:
        """Read the builds list back from the build Jobs and the open review apps from
        their Deployments, and route the configured apps not deployed yet. Call once,
        after the platform started, before serving. Never fails: what cannot be done is
        logged."""
        restored = await self.builder.restore()
        reopened = await self._reopen_reviews()
        await self.deployer.start(present=reopened)
        self._resume_deploys(restored)
        if restored:
            log.info("builds read back from their Jobs", namespace=self._namespace,
                     builds=len(restored))
        if reopened:
            log.info("open review apps read back from their Deployments",
                     namespace=self._namespace, review_apps=reopened)

    def _resume_deploys(self, restored: Collection[str]) -> None:
        """Deploy the read-back builds that still run and were to be deployed once built
        (a review app's push, `build --deploy`), as if wakeproxy had not restarted.

        Every replica that restarts while such a Job runs follows it and deploys it: the
        deploy is a server-side apply of the same release (image, build, commit), so a
        second one changes nothing, and no replica is left out (a leader that did not
        restart would never have read the Job back). What must not happen is an older
        commit deployed over a newer one: see `_still_newest`.
        """
        for build_id in restored:
            build = self.builder.get(build_id)
            if build is not None and build.deploy and not build.state.finished:
                log.info("build read back still running: deployed once it succeeds",
                         app=build.app, build=build.id, commit=build.commit)
                self._deploy_later(build, self._still_newest)

    async def _still_newest(self, build: Build) -> bool:
        """Whether no newer build of the app, also to be deployed, was asked for since (on
        any replica: its Job tells). The newest wins, as without a restart; when the API
        cannot tell, the build is not deployed (a warning says how to deploy it)."""
        try:
            superseded = await self.builder.superseded(build)
        except ApiError as e:
            log.warning("build read back not deployed: the Kubernetes API refused the list "
                        "of newer builds", app=build.app, build=build.id, status=e.status,
                        reason=e.message, hint=f"wakeproxy deploy {build.app} {build.id}")
            return False
        if superseded:
            log.info("build read back not deployed: a newer build of the app was asked for",
                     app=build.app, build=build.id)
        return not superseded

    async def _reopen_reviews(self) -> list[str]:
        if self.reviews is None:
            return []
        try:
            records = await found_reviews(self._deploys)
        except ApiError as e:
            # Serving goes on: such a review app is known again at its pull request's
            # next push, and `closed` deletes its objects by label all the same.
            log.warning("open review apps not read back: the Kubernetes API refused the "
                        "list", namespace=self._namespace, status=e.status, reason=e.message)
            return []
        return self.reviews.restore(records)

    async def close(self) -> None:
        await self._cancel_tasks()
        if self.reviews is not None:
            await self.reviews.close()
        await self.deployer.close()
        await self.builder.close()
