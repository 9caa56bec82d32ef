"""Scale-ups this replica wrote, followed until their pods serve or until they are given up.

A wake holds its requests for `wake_timeout` (then they get 504 with Retry-After), but the
scale-up it wrote outlives it: on a real cluster a new node or a large image can take
longer than any request should wait, and scaling back at the timeout would make the next
request start over, forever. So the scale-up is kept and followed here (its pods listed
with back-off: fast at first, then every few seconds), and a later wake joins it. It is
given up — scaled back to zero, only if the count is still the one we wrote — when its
pods fail for good (progress.py: crash loop, image pull failing for `image_pull_grace`,
unschedulable for `unschedulable_grace`, refused at creation for `refused_grace` — the
watched Deployment's `ReplicaFailure`), or when the app's `give_up_after` has passed since
it was written. Following ends as soon as the app serves, someone else changes the
count (a sleep, an HPA, a person), or the platform closes; a wake waiting on a scale-up
that is given up fails at once with the reason.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import structlog

from wakeproxy.controlplane.tasks import spawn
from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.annotations import AppSpec
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.backoff import Backoff
from wakeproxy.platforms.kubernetes.errors import ApiError
from wakeproxy.platforms.kubernetes.progress import Watchful, node_wait
from wakeproxy.platforms.kubernetes.scaler import (
    ScaleContested,
    Scaler,
    ScaleUnavailable,
    Written,
)
from wakeproxy.platforms.kubernetes.view import ClusterView
from wakeproxy.settings import KubernetesSettings

log = structlog.get_logger("wakeproxy.kubernetes")

_POLL_FIRST = 0.25  # the first look at the pods after the scale-up
_POLL_MAX = 5.0  # then at most this far apart
# A scale-up whose pods still wait for a node this long after it was written is counted
# (wakeproxy_wakes_waited_for_scheduling_total): the wake waited for capacity the headroom
# was meant to hold (placing a pod, preempting placeholders included, takes well under).
SCHEDULING_WAIT = 2.0


@dataclass(eq=False)
class ScaleUp:
    spec: AppSpec
    replicas: int  # the count we wrote
    give_up_at: float  # monotonic
    written_at: float = 0.0  # monotonic
    status: str = "scaled up, no pod yet"
    waited_for_node: bool = False  # counted as having waited for scheduling
    failure: str | None = None  # set when given up: why
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ScaleUps:
    def __init__(self, *, api: Api, scaler: Scaler, view: ClusterView,
                 deployments: dict[tuple[str, str], JSON], settings: KubernetesSettings,
                 stats: PlatformStats, clock: Clock) -> None:
        self._api = api
        self._scaler = scaler
        self._view = view
        self._deployments = deployments
        self._settings = settings
        self._stats = stats
        self._clock = clock
        self._followed: dict[str, ScaleUp] = {}

    def started(self, spec: AppSpec, written: Written) -> ScaleUp:
        """Follow the scale-up we just wrote (instead of any earlier one of the app)."""
        self.drop(spec.name)
        now = self._clock.monotonic()
        up = ScaleUp(spec, written.replicas, now + spec.policy.give_up_after, written_at=now)
        self._followed[spec.name] = up
        up.task = spawn(self._follow(up), name=f"scale-up:{spec.name}")
        return up

    def current(self, app: str) -> ScaleUp | None:
        """Our scale-up of `app` still followed (a wake joins it), or just given up."""
        return self._followed.get(app)

    def drop(self, app: str) -> None:
        """Stop following `app` (it is being put to sleep, or scaled up anew)."""
        up = self._followed.pop(app, None)
        if up is not None and up.task is not None:
            up.task.cancel()

    async def close(self) -> None:
        tasks = [up.task for up in self._followed.values() if up.task is not None]
        self._followed.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- internals -----------------------------------------------------------------------

    async def _follow(self, up: ScaleUp) -> None:
        spec = up.spec
        backoff = Backoff(initial=_POLL_FIRST, maximum=_POLL_MAX)
        watchful = Watchful(pull_grace=self._settings.image_pull_grace,
                            unschedulable_grace=self._settings.unschedulable_grace,
                            refused_grace=self._settings.refused_grace)
        try:
            while True:
                if self._view.serving(spec) or self._view.desired(spec) != up.replicas:
                    return  # it serves, or the count is someone else's decision now
                now = self._clock.monotonic()
                if now >= up.give_up_at:
                    up.failure = (f"not ready {spec.policy.give_up_after:g}s after it was "
                                  f"scaled up ({up.status})")
                    self._stats.scale_up_given_up("give_up_after")
                    break
                pause = min(backoff.delay(), up.give_up_at - now)
                pods = await self._pods(spec)
                if pods is not None:
                    pause = min(pause, self._scheduling(up, pods, now))
                    deployment = self._deployments.get((spec.namespace, spec.deployment))
                    verdict = watchful.assess(pods, now, deployment)
                    up.status = verdict.status
                    if verdict.failing is not None:
                        up.failure = verdict.failing
                        self._stats.scale_up_given_up(verdict.kind)
                        break
                    if verdict.due is not None:
                        pause = min(pause, verdict.due - now)  # judged when its grace ends
                await asyncio.sleep(max(0.0, pause))
            await self._give_up(up)
        finally:
            if self._followed.get(spec.name) is up:
                del self._followed[spec.name]

    def _scheduling(self, up: ScaleUp, pods: list[JSON], now: float) -> float:
        """Count the scale-up once if its pods, listed at `now`, still wait for a node
        SCHEDULING_WAIT after it was written; how long until it is worth looking again."""
        if up.waited_for_node:
            return _POLL_MAX
        verdict = node_wait(pods, up.written_at, now, SCHEDULING_WAIT)
        if verdict.waited:
            up.waited_for_node = True
            self._stats.waited_for_scheduling()
            log.warning("a wake waited for a node", app=up.spec.name, pods=list(verdict.waited),
                        seconds=round(now - up.written_at, 1))
        if verdict.look_again_at is None:
            return _POLL_MAX
        return verdict.look_again_at - now

    async def _give_up(self, up: ScaleUp) -> None:
        spec = up.spec
        log.warning("scale-up given up: scaling back what it started", app=spec.name,
                    replicas=up.replicas, reason=up.failure)
        self._view.poke()  # a wake waiting on it fails now, with the reason
        deadline = asyncio.get_running_loop().time() + self._settings.request_timeout
        try:
            written = await self._scaler.scale_down(spec, deadline=deadline, expect=up.replicas)
        except ScaleContested as e:
            log.info("given-up scale-up left alone: someone else changed the count",
                     app=spec.name, replicas=e.replicas)
        except (ScaleUnavailable, ApiError) as e:
            log.warning("given-up scale-up not scaled back; the sweeper will", app=spec.name,
                        reason=str(e))
        else:
            if written is not None:
                self._view.wrote(spec, written)

    async def _pods(self, spec: AppSpec) -> list[JSON] | None:
        """The app's pods now, or None when they cannot be listed (try again later)."""
        selector = pod_selector(self._deployments.get((spec.namespace, spec.deployment)))
        if selector is None:
            return None
        try:
            body = await self._api.call(self._api.core.list_namespaced_pod, spec.namespace,
                                        label_selector=selector)
        except ApiError as e:
            log.info("pods of a scale-up not listed; trying again", app=spec.name,
                     status=e.status, reason=e.message)
            return None
        return [p for p in body.get("items") or [] if isinstance(p, dict)]


def pod_selector(deployment: JSON | None) -> str | None:
    """The Deployment's pod selector as a label selector string (None: none usable)."""
    selector = ((deployment or {}).get("spec") or {}).get("selector") or {}
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for e in selector.get("matchExpressions") or []:
        key, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In":
            terms.append(f"{key} in ({','.join(values)})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({','.join(values)})")
        elif op == "Exists":
            terms.append(str(key))
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
    return ",".join(terms) or None
