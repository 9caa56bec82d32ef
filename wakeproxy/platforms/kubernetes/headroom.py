"""Keeps the headroom: a Deployment of placeholder pods holding room for sleeping apps' wakes.

Every replica watches the placeholder Deployment (in wakeproxy's own namespace) and
reports what it holds in PlatformStats. Only the leader writes it, as only the leader
sweeps: after the app Deployments change (an app added, resized, deleted, woken or put to
sleep; the watch wakeproxy has of them anyway) or when it takes the lead, it works out
the placeholders wanted (headroom_plan) and applies them (server-side apply, field
manager `wakeproxy`) only when they differ from what the Deployment says it was last
given. Changes in a burst (a relist, a sweep putting many apps to sleep) are taken
together, one write for all. With nothing to hold the Deployment is kept at zero
replicas; with the headroom turned off it is deleted. A failed write is retried with
back-off. Never polls the API and never touches an app's Deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping

import structlog

from wakeproxy.model.quantity import format_cpu, format_memory
from wakeproxy.model.stats import HeadroomHeld, PlatformStats
from wakeproxy.platforms.kubernetes.annotations import desired_replicas
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.backoff import Backoff
from wakeproxy.platforms.kubernetes.deploys import FIELD_MANAGER
from wakeproxy.platforms.kubernetes.errors import ApiError, NotFound
from wakeproxy.platforms.kubernetes.headroom_plan import (
    NAME,
    Shape,
    Sleeper,
    applied_digest,
    manifest,
    plan,
    pod_shape,
)
from wakeproxy.platforms.kubernetes.view import ClusterView
from wakeproxy.platforms.kubernetes.watcher import Key
from wakeproxy.settings import Headroom

log = structlog.get_logger("wakeproxy.kubernetes.headroom")

_APPLY = "application/apply-patch+yaml"
# How often a follower looks whether it leads now: a local check, no API call.
_LEAD_CHECK = 1.0


def _version(obj: JSON | None) -> int:
    rv = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
    return int(rv) if rv.isdigit() else -1


class HeadroomKeeper:
    def __init__(
        self, *, api: Api, settings: Headroom, namespace: str, view: ClusterView,
        deployments: Mapping[Key, JSON], own: Mapping[Key, JSON],
        leader: Callable[[], bool], synced: Callable[[], bool], stats: PlatformStats,
        settle: float,
    ) -> None:
        self._api = api
        self._settings = settings
        self._namespace = namespace
        self._view = view
        self._deployments = deployments
        self._own = own  # the placeholder Deployment, as its watch mirrors it
        self._leader = leader
        self._synced = synced  # both watches listed: the apps and the placeholders known
        self._stats = stats
        self._settle = settle
        self._dirty = asyncio.Event()
        self._shapes: dict[Key, tuple[str, Shape]] = {}  # app Deployment → (version, shape)
        # What we applied last, until the watch shows it: (digest, replicas, version).
        self._written: tuple[str | None, int, int] | None = None
        stats.headroom = HeadroomHeld()

    # -- notifications (from the watches) ------------------------------------------------

    def apps_changed(self, keys: set[Key]) -> None:
        for key in keys:
            if key not in self._deployments:
                self._shapes.pop(key, None)
        self._dirty.set()

    def own_changed(self, keys: set[Key]) -> None:
        obj = self._own.get((self._namespace, NAME))
        if self._written is not None and (obj is None or _version(obj) >= self._written[2]):
            self._written = None  # the watch has caught up with our write (or saw it deleted)
        held = HeadroomHeld()
        if obj is not None:
            shape = pod_shape(obj)
            ready = ((obj.get("status") or {}).get("readyReplicas")) or 0
            held = HeadroomHeld(desired=desired_replicas(obj), ready=int(ready),
                                cpu_millis=shape.cpu, memory_bytes=shape.memory)
        self._stats.headroom = held
        self._dirty.set()  # edited or deleted by someone else: the leader puts it back

    # -- the leader's loop ----------------------------------------------------------------

    async def run(self) -> None:
        backoff = Backoff(initial=1.0, maximum=30.0)
        was_leading = False
        while True:
            try:
                async with asyncio.timeout(_LEAD_CHECK):
                    await self._dirty.wait()
            except TimeoutError:
                pass
            dirty = self._dirty.is_set()
            self._dirty.clear()
            leading = self._leader() and self._synced()
            if not leading or (was_leading and not dirty):
                was_leading = leading
                continue
            was_leading = True
            await asyncio.sleep(self._settle)  # the rest of a burst joins this one write
            self._dirty.clear()
            try:
                await self.reconcile()
            except ApiError as e:
                wait = backoff.delay(e)
                log.warning("headroom not written; trying again", status=e.status,
                            reason=e.message, retry_in=round(wait, 3))
                await asyncio.sleep(wait)
                self._dirty.set()
            else:
                backoff.reset()

    async def reconcile(self) -> None:
        """Write the placeholder Deployment if it is not what is wanted now."""
        observed = self._own.get((self._namespace, NAME))
        apps = self._api.apps
        if not self._settings.enabled:
            if observed is not None:
                with contextlib.suppress(NotFound):  # deleted meanwhile: as wanted
                    await self._api.call(apps.delete_namespaced_deployment, NAME,
                                         self._namespace)
                self._written = None
                log.info("headroom turned off: placeholders deleted")
            return
        slots = plan(self._settings, self._sleepers())
        shape, replicas = slots.shape, slots.pods
        if replicas == 0:
            if observed is None:
                return  # nothing held, nothing to hold
            shape = pod_shape(observed)  # zero placeholders: the template may stay
        doc = manifest(self._settings, self._namespace, replicas, shape)
        digest = applied_digest(doc)
        if self._current(observed) == (digest, replicas):
            return
        written = await self._api.call(
            apps.patch_namespaced_deployment, NAME, self._namespace, doc,
            field_manager=FIELD_MANAGER, force=True, _content_type=_APPLY)
        self._written = (digest, replicas, _version(written))
        log.info("headroom applied", pods=replicas, cpu=format_cpu(shape.cpu),
                 memory=format_memory(shape.memory), held_for=list(slots.apps))

    # -- internals -------------------------------------------------------------------------

    def _current(self, observed: JSON | None) -> tuple[str | None, int] | None:
        """(digest, replicas) the Deployment has, or our last write until the watch has it."""
        written = self._written
        if written is not None and _version(observed) < written[2]:
            return written[0], written[1]
        if observed is None:
            return None
        return applied_digest(observed), desired_replicas(observed)

    def _sleepers(self) -> Iterator[Sleeper]:
        for spec in self._view.catalog.apps.values():
            if spec.policy.unavailable is not None or self._view.desired(spec) != 0:
                continue  # awake pods hold their own room; a not-deployed app never wakes
            key = (spec.namespace, spec.deployment)
            yield Sleeper(spec.name, self._shape(key), spec.policy.awake_replicas)

    def _shape(self, key: Key) -> Shape:
        obj = self._deployments.get(key)
        version = str(((obj or {}).get("metadata") or {}).get("resourceVersion") or "")
        cached = self._shapes.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        shape = pod_shape(obj)
        self._shapes[key] = (version, shape)
        return shape
