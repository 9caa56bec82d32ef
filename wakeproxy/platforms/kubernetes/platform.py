"""The Kubernetes platform: apps are Deployments, woken and put to sleep by scaling them.

Wake: if the cached state already shows serving endpoints (another replica woke it, or
the API is down but the pods are up), use them without a call. Otherwise scale to the
app's `awake_replicas` if it is at zero (one read, one conditional write; a replica that
loses the race sees the new count and only waits), then wait until an endpoint serves:
ready in its EndpointSlice, or — sooner — answering a direct probe as soon as its address
is published (the probe the kubelet runs, readiness.py; fast at first, then backing off
to once a second, so a pod pulling its image is not hammered). A wake that could not
reach the API for its whole timeout fails as UNAVAILABLE (503 with Retry-After); one that
timed out otherwise leaves its scale-up running (scaleups.py follows it, a later wake
joins it, and it is scaled back only when its pods fail for good or `give_up_after`
passes); a wake whose scale-up is given up fails with the reason. Sleep, with other
replicas running, is two-phase (drains.py): propose it in the activity record, wait until
every peer has taken the app out of rotation and has nothing of it open, then scale to
zero unless someone else changed the count meanwhile; a peer that wants the app, or a
request here, calls the sleep off. If the API cannot be reached, the app stays up and is
reported serving again. A wake asked for while a peer's proposal holds the app waits for
that proposal's outcome.

`close()` stops watching and hands back the lease; it never scales apps down: other
replicas keep serving them. Nothing else imports `kubernetes_asyncio`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from wakeproxy.controlplane.platform import PlatformEvent, StillStarting, WakeFailed
from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.applog import Follower
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.board import FailureKind, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.peers import PeerActivity
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.activity import ACTIVITY_LABEL, AGREE_WITHIN, ActivitySync
from wakeproxy.platforms.kubernetes.annotations import (
    ENABLED_LABEL,
    AppSpec,
    held_asleep,
    managed_by_wakeproxy,
)
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.applogs import PodLogs
from wakeproxy.platforms.kubernetes.backoff import Backoff
from wakeproxy.platforms.kubernetes.client import InCluster, connect
from wakeproxy.platforms.kubernetes.drains import Drains
from wakeproxy.platforms.kubernetes.elector import LeaseElector
from wakeproxy.platforms.kubernetes.endpoints import SERVICE_NAME_LABEL
from wakeproxy.platforms.kubernetes.errors import ApiError, NotFound
from wakeproxy.platforms.kubernetes.headroom import HeadroomKeeper
from wakeproxy.platforms.kubernetes.headroom_plan import LABEL as HEADROOM_LABEL
from wakeproxy.platforms.kubernetes.readiness import ProbePlan, probe_plan
from wakeproxy.platforms.kubernetes.scaler import ScaleContested, Scaler, ScaleUnavailable
from wakeproxy.platforms.kubernetes.scaleups import ScaleUp, ScaleUps, pod_selector
from wakeproxy.platforms.kubernetes.view import ClusterView
from wakeproxy.platforms.kubernetes.watcher import Key, Resource, Watcher
from wakeproxy.platforms.local.net import probe_http, probe_tcp
from wakeproxy.settings import KubernetesSettings

log = structlog.get_logger("wakeproxy.kubernetes")

_PROBE_TIMEOUT = 1.0  # one direct probe of a pod that accepted but answers slowly
_PROBE_BACKOFF_MAX = 1.0  # probes of a starting pod slow down to once a second at most
_SPARE_CONNECTIONS = 16  # beyond the open watches: calls, scale writes, the lease
# The controllers' own client: a build holds one connection for as long as it follows its
# log, so builds share this pool among themselves and never take the data plane's.
_CONTROLLER_CONNECTIONS = 16
# App log readers' streams (a pods watch and a log per pod each): a pool of their own, so
# many readers wait on each other, never on a wake's scale write.
_LOG_CONNECTIONS = 32


# The lease and the activity record are handed back at shutdown within this much (else they
# expire by themselves): part of the budget terminationGracePeriodSeconds must cover.
_HANDBACK_MAX = 5.0


def handback_budget(settings: KubernetesSettings) -> float:
    """The longest `close()` spends handing back the lease and the activity record."""
    return min(2 * settings.request_timeout, _HANDBACK_MAX)


def _verdict_margin(timeout: float) -> float:
    """How long before the wake deadline an unreachable API is declared: held requests
    time out at the deadline, so the reason must be on the board a little earlier."""
    return min(0.5, 0.1 * timeout)


class KubernetesPlatform:
    def __init__(
        self,
        settings: KubernetesSettings,
        *,
        defaults: AppPolicy,
        identity: str,
        lease_namespace: str,
        incluster: InCluster | None,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        peers: PeerActivity,
        stats: PlatformStats,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._defaults = defaults
        self.identity = identity
        self._lease_namespace = lease_namespace
        self._incluster = incluster
        self._board = board
        self._ledger = ledger
        self._peers = peers
        self._stats = stats
        self._clock = clock
        self._events: asyncio.Queue[PlatformEvent] = asyncio.Queue()
        self._deployments: dict[Key, JSON] = {}
        self._slices: dict[Key, JSON] = {}
        self._records: dict[Key, JSON] = {}
        self._placeholders: dict[Key, JSON] = {}
        self.drains = Drains(board=board, ledger=ledger, on_change=self._hold_changed,
                             at_zero=lambda app: self.view.at_zero(app))
        self.view = ClusterView(deployments=self._deployments, slices=self._slices,
                                defaults=defaults, emit=self._events.put_nowait,
                                stats=stats, holding=self.drains.holding,
                                on_zero=self.drains.settled)
        self._tasks: list[asyncio.Task[Any]] = []
        self._api: Api | None = None
        self._controllers_api: Api | None = None
        self._logs_api: Api | None = None
        self._log_readers: set[asyncio.Task[None]] = set()
        self._scaler: Scaler | None = None
        self._scale_ups: ScaleUps | None = None
        self._elector: LeaseElector | None = None
        self.headroom: HeadroomKeeper | None = None
        self._activity: ActivitySync | None = None
        self._watchers: list[Watcher] = []
        self._closed = False

    @property
    def api(self) -> Api:
        """The API client of the started platform: watches, scale writes, leases."""
        if self._api is None:
            raise RuntimeError("the Kubernetes platform is not started")
        return self._api

    @property
    def controllers_api(self) -> Api:
        """A client of their own for the controllers (builds' log streams, deploys): a
        pool they can fill without stalling a wake's scale write or a watch's reconnect."""
        if self._controllers_api is None:
            raise RuntimeError("the Kubernetes platform is not started")
        return self._controllers_api

    # -- Platform ----------------------------------------------------------------------

    async def start(self) -> None:
        s = self._settings
        scopes = max(1, len(s.namespaces))
        api_client = await connect(kubeconfig=s.kubeconfig, incluster=self._incluster,
                                   pool_size=2 * scopes + _SPARE_CONNECTIONS)
        api = self._api = Api(api_client, timeout=s.request_timeout, stats=self._stats)
        controllers_client = await connect(kubeconfig=s.kubeconfig, incluster=self._incluster,
                                           pool_size=_CONTROLLER_CONNECTIONS)
        self._controllers_api = Api(controllers_client, timeout=s.request_timeout,
                                    stats=self._stats)
        logs_client = await connect(kubeconfig=s.kubeconfig, incluster=self._incluster,
                                    pool_size=_LOG_CONNECTIONS)
        self._logs_api = Api(logs_client, timeout=s.request_timeout, stats=self._stats)
        self._scaler = Scaler(api, self._stats)
        self._scale_ups = ScaleUps(api=api, scaler=self._scaler, view=self.view,
                                   deployments=self._deployments, settings=s,
                                   stats=self._stats, clock=self._clock)
        common: dict[str, Any] = {
            "api": api, "namespaces": s.namespaces, "stats": self._stats, "clock": self._clock,
            "watch_timeout": s.watch_timeout, "idle_timeout": s.watch_idle_timeout,
        }
        deployment_kind = Resource("deployments", api.apps.list_namespaced_deployment,
                                   api.apps.list_deployment_for_all_namespaces)
        placeholders = Watcher(
            resource=deployment_kind, label_selector=f"{HEADROOM_LABEL}=true",
            cache=self._placeholders, on_change=lambda keys: headroom.own_changed(keys),
            **{**common, "namespaces": (self._lease_namespace,)})
        deployments = Watcher(
            resource=deployment_kind, label_selector=f"{ENABLED_LABEL}=true",
            cache=self._deployments, on_change=self._apps_changed, **common)
        headroom = self.headroom = HeadroomKeeper(
            api=api, settings=s.headroom, namespace=self._lease_namespace, view=self.view,
            deployments=self._deployments, own=self._placeholders, leader=self.leader,
            synced=lambda: deployments.synced.is_set() and placeholders.synced.is_set(),
            # A burst of changes (a relist, a sweep) is one write, taken as often as
            # activity is published.
            stats=self._stats, settle=min(1.0, s.activity_interval))
        slices = Watcher(
            resource=Resource("endpointslices", api.discovery.list_namespaced_endpoint_slice,
                              api.discovery.list_endpoint_slice_for_all_namespaces),
            label_selector=SERVICE_NAME_LABEL, cache=self._slices,
            on_change=self.view.slices_changed, **common)
        records = Watcher(
            resource=Resource("leases", api.coordination.list_namespaced_lease,
                              api.coordination.list_lease_for_all_namespaces),
            label_selector=f"{ACTIVITY_LABEL}=true", cache=self._records,
            on_change=self._records_changed, **{**common, "namespaces": (self._lease_namespace,)})
        activity = self._activity = ActivitySync(
            api=api, namespace=self._lease_namespace, lease_name=s.lease_name,
            identity=self.identity, interval=s.activity_interval, board=self._board,
            ledger=self._ledger, peers=self._peers, drains=self.drains,
            records=self._records, records_current=lambda: records.healthy,
            # Peers hold a proposed app at most this long: the wait for their answers,
            # then one scale call, then a second of slack.
            proposal_ttl=AGREE_WITHIN + s.request_timeout + 2.0, stats=self._stats,
            clock=self._clock)
        self._elector = LeaseElector(
            api=api, namespace=self._lease_namespace, name=s.lease_name,
            identity=self.identity, duration=s.lease_duration, clock=self._clock,
            stats=self._stats, on_change=activity.leading_changed)
        self._stats.leader = False
        self._stats.scheduling_waits = self._stats.scheduling_waits or 0
        self._watchers = [deployments, slices, records]
        self._tasks = [
            spawn(deployments.run(), name="kubernetes:deployments"),
            spawn(slices.run(), name="kubernetes:endpointslices"),
            spawn(records.run(), name="kubernetes:activity-records"),
            spawn(self._elector.run(), name="kubernetes:lease"),
            spawn(activity.run(), name="kubernetes:activity"),
            spawn(placeholders.run(), name="kubernetes:headroom-deployment"),
            spawn(headroom.run(), name="kubernetes:headroom"),
        ]
        log.info("watching the Kubernetes API", identity=self.identity,
                 namespaces=list(s.namespaces) or "all", lease=s.lease_name,
                 lease_namespace=self._lease_namespace)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in (*self._tasks, *self._log_readers):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._log_readers, return_exceptions=True)
        if self._scale_ups is not None:
            await self._scale_ups.close()  # what they scaled up stays: peers serve it
        self.drains.close()
        handbacks: list[Coroutine[Any, Any, None]] = []
        if self._elector is not None:
            handbacks.append(self._elector.release())
        if self._activity is not None:
            handbacks.append(self._activity.remove())
        try:
            async with asyncio.timeout(handback_budget(self._settings)):
                await asyncio.gather(*handbacks)
        except TimeoutError:
            log.warning("lease and activity record not handed back in time")
        for api in (self._api, self._controllers_api, self._logs_api):
            if api is not None:
                await api.client.close()

    async def wake(self, app: str, *, timeout: float) -> tuple[Endpoint, ...]:  # noqa: ASYNC109
        spec = self.view.spec(app)
        if spec is None or self._scaler is None:
            raise WakeFailed(f"{app} is not a Deployment wakeproxy knows")
        if self._activity is not None:
            self._activity.withdraw(app)  # a sleep we proposed is off: it is wanted
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self.drains.holding(app):
            await self._until_released(app, deadline)
        serving = self.view.serving(spec)
        if serving:
            self.view.woke(spec, serving)
            return serving
        verdict_at = deadline - _verdict_margin(timeout)
        for watcher in self._watchers:
            if not watcher.healthy:
                watcher.poke()  # a wake needs current slices: reconnect now, not after backoff
        try:
            written = await self._scaler.scale_up(spec, deadline=verdict_at,
                                                  release=self._held_note(spec))
        except ScaleUnavailable as e:
            raise WakeFailed(f"{e.reason} (for {timeout:g}s)", FailureKind.UNAVAILABLE) from None
        except NotFound:
            raise WakeFailed(f"Deployment {spec.namespace}/{spec.deployment} is gone") from None
        except ApiError as e:
            raise WakeFailed(f"the Kubernetes API refused to scale it up: HTTP {e.status} "
                             f"{e.message}") from None
        assert self._scale_ups is not None
        if written is not None:
            self.view.wrote(spec, written)
            log.info("scaled up", app=app, replicas=written.replicas)
            scale_up: ScaleUp | None = self._scale_ups.started(spec, written)
        else:
            scale_up = self._scale_ups.current(app)  # ours, still starting: join it
        try:
            endpoints = await self._until_ready(spec, deadline, verdict_at, scale_up)
        except TimeoutError:
            if not self._api_healthy():
                raise WakeFailed(
                    "the Kubernetes API could not be reached to learn whether it is ready "
                    f"(for {timeout:g}s)", FailureKind.UNAVAILABLE) from None
            # The scale-up is left running (a later wake joins it): pods being scheduled
            # or pulling a large image often take longer than a request should be held.
            if scale_up is not None:
                raise StillStarting(scale_up.status) from None
            raise TimeoutError(f"{app} not ready within {timeout:g}s") from None
        self.view.woke(spec, endpoints)
        return endpoints

    async def sleep(self, app: str, *, held: bool = False) -> None:
        spec = self.view.spec(app)
        if spec is None or self._scaler is None:
            return
        if self._scale_ups is not None:
            self._scale_ups.drop(app)  # a sleep decides the count now
        withdraw = True
        try:
            if not self._api_healthy():
                raise ScaleUnavailable("the Kubernetes API cannot be reached")
            agreed: float | None = None
            if self._activity is not None:
                agreed = await self._activity.agree_to_sleep(
                    app, spec.policy.idle_after, lambda: self._busy_here(app))
                if agreed is None:
                    log.info("not scaled to zero: wanted meanwhile, here or on a peer",
                             app=app)
                    return
            # A full request budget from now, but within the peers' hold of the app.
            deadline = asyncio.get_running_loop().time() + self._settings.request_timeout
            if agreed is not None:
                deadline = min(deadline, agreed)
            written = await self._scaler.scale_down(spec, deadline=deadline, held=held)
            if written is not None:
                self.view.wrote(spec, written)
                log.info("scaled to zero", app=app)
            # The proposal stays in our record until it expires: a peer whose watch of
            # the Deployment lags keeps holding the app until it sees it at zero.
            withdraw = False
        except ScaleUnavailable as e:
            log.warning("not scaled to zero; it keeps serving", app=app, reason=e.reason)
        except ApiError as e:
            log.warning("not scaled to zero; it keeps serving", app=app, status=e.status,
                        reason=e.message)
        except ScaleContested as e:
            log.info("not scaled to zero: another writer's count stands", app=app,
                     replicas=e.replicas)
        finally:
            if withdraw and self._activity is not None:
                self._activity.withdraw(app)  # not asleep after all: peers serve it again
            # Queued now, so the lifecycle applies it right after marking the app asleep.
            self.view.slept(spec)

    async def next_event(self) -> PlatformEvent:
        return await self._events.get()

    def follow_output(self, app: str, backlog: int, *, follow: bool) -> Follower:
        """The logs of the app's pods (see applogs): the last `backlog` lines of each and,
        if `follow`, every line to come, pods joining as they start; LookupError for an
        app no Deployment declares."""
        spec = self.view.spec(app)
        if spec is None:
            raise LookupError(app)
        selector = pod_selector(self._deployments.get((spec.namespace, spec.deployment)))
        follower = Follower()
        if selector is None or self._logs_api is None or self._closed:
            follower.push([f"==> the pods of {app} cannot be found now: its Deployment "
                           "has no usable selector, or wakeproxy is not connected"])
            follower.end()
            return follower
        reader = PodLogs(api=self._logs_api, namespace=spec.namespace, selector=selector,
                         follower=follower, backlog=backlog, stats=self._stats,
                         clock=self._clock, watch_timeout=self._settings.watch_timeout)
        task = spawn(reader.follow() if follow else reader.once(), name=f"app-log:{app}")
        self._log_readers.add(task)
        task.add_done_callback(self._log_readers.discard)
        task.add_done_callback(lambda _: follower.end())

        def stop(_: Follower) -> None:
            task.cancel()  # the reader hung up: its watch and pod streams go with it

        follower.on_close(stop)
        return follower

    def held_asleep(self, app: str) -> bool:
        """At zero replicas after an operator's sleep (the Deployment says so, whichever
        replica took the command), not woken since; or a peer's sleep is under way (its
        proposal holds the app here until the Deployment is seen at zero, annotated)."""
        if self.drains.holding(app):
            return True
        spec = self.view.spec(app)
        return spec is not None and self.view.at_zero(app) and self._held_note(spec)

    def foreign_app(self, app: str) -> bool:
        """An app of a Deployment someone else deploys (declared by its annotations), not
        one wakeproxy's controllers made."""
        spec = self.view.spec(app)
        return spec is not None and not managed_by_wakeproxy(
            self._deployments.get((spec.namespace, spec.deployment)))

    def _held_note(self, spec: AppSpec) -> bool:
        return held_asleep(self._deployments.get((spec.namespace, spec.deployment)))

    def leader(self) -> bool:
        """Leading, and peer activity read since this term began (no blind sweeps)."""
        e = self._elector
        if e is None or not e.leading or e.acquired_at is None:
            return False
        synced = self._peers.synced_at
        return synced is not None and synced >= e.acquired_at

    # -- internals -----------------------------------------------------------------------

    def _api_healthy(self) -> bool:
        return all(w.healthy for w in self._watchers)

    def _apps_changed(self, keys: set[Key]) -> None:
        self.view.deployments_changed(keys)
        if self.headroom is not None:
            self.headroom.apps_changed(keys)  # after the view: it reads what is asleep

    def _records_changed(self, keys: set[Key]) -> None:
        if self._activity is not None:
            self._activity.records_changed(keys)
        self.view.records_synced()

    def _hold_changed(self, app: str) -> None:
        """A peer's proposal started or stopped holding `app` here."""
        self.view.hold_changed(app)
        if self._activity is not None:
            self._activity.nudge()  # our answer may have changed: write it now

    def _busy_here(self, app: str) -> bool:
        activity = self._ledger.peek(app)
        return activity is not None and (activity.in_flight > 0 or activity.tunnels > 0)

    async def _until_released(self, app: str, deadline: float) -> None:
        """Wait out a peer's proposal to sleep `app`, telling it the app is wanted here."""
        loop = asyncio.get_running_loop()
        while self.drains.holding(app):
            self.drains.want(app)
            if self._activity is not None:
                self._activity.nudge()
            ended = self.drains.ended()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            try:
                async with asyncio.timeout(remaining):
                    await ended.wait()
            except TimeoutError:
                pass

    async def _until_ready(
        self, spec: AppSpec, deadline: float, verdict_at: float, scale_up: ScaleUp | None,
    ) -> tuple[Endpoint, ...]:
        loop = asyncio.get_running_loop()
        plan = probe_plan(spec, self._deployments.get((spec.namespace, spec.deployment)))
        backoff = Backoff(initial=spec.policy.probe_interval, maximum=_PROBE_BACKOFF_MAX)
        probed: frozenset[Endpoint] = frozenset()
        next_probe = loop.time()
        while True:
            if self.drains.holding(spec.name):
                await self._until_released(spec.name, deadline)
            changed = self.view.changed()
            if scale_up is not None and scale_up.failure is not None:
                raise WakeFailed(f"its scale-up was given up: {scale_up.failure}")
            serving = self.view.serving(spec)
            if serving:
                return serving
            if loop.time() >= verdict_at and not self._api_healthy():
                raise TimeoutError  # cut off from the API: say so before the deadline
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            starting = (frozenset(self.view.addresses(spec).starting)
                        if plan.kind != "slice" else frozenset())
            if starting != probed:
                # A new pod (or one gone): probe at once, and start slow-down anew.
                probed, next_probe = starting, loop.time()
                backoff.reset()
            if starting and loop.time() >= next_probe:
                ordered = sorted(starting, key=str)
                within = min(remaining, _PROBE_TIMEOUT)
                results = await asyncio.gather(
                    *(self._probe(ep, plan, within) for ep in ordered))
                answering = {ep for ep, ok in zip(ordered, results, strict=True) if ok}
                if answering:
                    self.view.probed(spec, answering)
                    continue
                next_probe = loop.time() + backoff.delay()
            wake_at = next_probe if starting else deadline
            until = verdict_at if loop.time() < verdict_at else deadline
            pause = min(wake_at, until) - loop.time()
            if pause > 0:
                # A new address or readiness shows up at once, not a pause later (other
                # apps' changes wake us too, but only a changed pod set probes early).
                try:
                    async with asyncio.timeout(pause):
                        await changed.wait()
                except TimeoutError:
                    pass

    @staticmethod
    async def _probe(endpoint: Endpoint, plan: ProbePlan, within: float) -> bool:
        port = plan.port if plan.port is not None else endpoint.port
        if plan.kind == "tcp":
            return await probe_tcp(endpoint.host, port, within=within)
        return await probe_http(endpoint.host, port, plan.path, within=within, ok=plan.ok,
                                headers=plan.headers, tls=plan.tls)
