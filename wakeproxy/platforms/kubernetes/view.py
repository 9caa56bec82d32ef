"""The cluster as wakeproxy sees it: apps from Deployments, their endpoints from slices.

Fed by the two watchers' change notifications; derives the app catalog (host conflicts
settled), which EndpointSlices belong to which app, and each app's serving endpoints,
and emits `AppsChanged` and `EndpointsChanged` whenever what it would report changes.

An app serves on its ready endpoints plus those a direct probe found answering before
the control plane marked them ready, and on none while its Deployment wants zero
replicas (old pods still listed as ready after a scale-down do not count), and on none
while a peer's proposal to sleep it holds it here (drains.py). The replica
count we wrote ourselves overrides the cached Deployment until the watch catches up, so
a lagging watch cannot make a sleeping app look awake. Endpoints are reported only once
both watchers have synced, and only after the app set that names them. Never calls the
API: the platform does, and tells the view what it wrote. Endpoints are reported only once
the activity records are read too, so no proposal in them is missed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import structlog

from wakeproxy.controlplane.platform import AppsChanged, EndpointsChanged, PlatformEvent
from wakeproxy.model.apps import AppPolicy, Endpoint
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.annotations import (
    AppSpec,
    app_name,
    desired_replicas,
    parse_deployment,
)
from wakeproxy.platforms.kubernetes.api import JSON
from wakeproxy.platforms.kubernetes.catalog import Catalog, build_catalog
from wakeproxy.platforms.kubernetes.endpoints import PodAddresses, addresses_of, service_of
from wakeproxy.platforms.kubernetes.scaler import Written
from wakeproxy.platforms.kubernetes.watcher import Key

log = structlog.get_logger("wakeproxy.kubernetes")

Service = tuple[str, str]  # (namespace, service name)


def _not_older(version: str | None, than: str) -> bool:
    """resourceVersions are opaque, but the API server's are increasing integers."""
    if version is None:
        return False
    if version.isdigit() and than.isdigit():
        return int(version) >= int(than)
    return version == than


def _ordered(endpoints: set[Endpoint] | frozenset[Endpoint]) -> tuple[Endpoint, ...]:
    return tuple(sorted(endpoints, key=lambda e: (e.host, e.port)))


class ClusterView:
    def __init__(
        self,
        *,
        deployments: Mapping[Key, JSON],
        slices: Mapping[Key, JSON],
        defaults: AppPolicy,
        emit: Callable[[PlatformEvent], None],
        stats: PlatformStats,
        holding: Callable[[str], bool] = lambda app: False,
        on_zero: Callable[[str], None] = lambda app: None,
    ) -> None:
        self._deployments = deployments
        self._slices = slices
        self._defaults = defaults
        self._emit = emit
        self._stats = stats
        self._holding = holding
        self._on_zero = on_zero  # an app's Deployment was seen wanting zero replicas
        self._records_synced = False
        self._specs: dict[Key, AppSpec | str] = {}
        self.catalog = Catalog()
        self._policies: tuple[AppPolicy, ...] | None = None  # last AppsChanged sent
        self._by_service: dict[Service, set[str]] = {}
        self._slice_index: dict[Service, set[Key]] = {}
        self._slice_service: dict[Key, Service] = {}
        self._reported: dict[str, tuple[Endpoint, ...]] = {}
        self._probed: dict[str, set[Endpoint]] = {}
        self._written: dict[Key, Written] = {}
        self._slices_synced = False
        self._refusals: dict[str, str] = {}
        self._changed = asyncio.Event()

    # -- watcher notifications -----------------------------------------------------------

    def deployments_changed(self, keys: set[Key]) -> None:
        dirty = self._policies is None
        for key in keys:
            obj = self._deployments.get(key)
            written = self._written.get(key)
            if written is not None and (obj is None or _not_older(_version(obj),
                                                                   written.version)):
                del self._written[key]
            old = self._specs.get(key)
            if obj is None:
                self._specs.pop(key, None)
            else:
                parsed = self._specs[key] = parse_deployment(obj, self._defaults)
                if isinstance(parsed, AppSpec) and parsed.ignored and (
                        not isinstance(old, AppSpec) or old.ignored != parsed.ignored):
                    for reason in parsed.ignored:
                        log.warning("deployment annotation ignored", app=parsed.name,
                                    reason=reason)
            dirty = dirty or self._specs.get(key) != old
        if dirty:
            self._rebuild()
        else:
            for key in keys:  # the replica count may have changed
                self.refresh(app_name(*key))
        for key in keys:
            spec = self._specs.get(key)
            if isinstance(spec, AppSpec) and self.desired(spec) == 0:
                self._on_zero(spec.name)
        self._fire()

    def records_synced(self) -> None:
        """The activity records were read (again): endpoints may be reported now."""
        if not self._records_synced:
            self._records_synced = True
            for app in self.catalog.apps:
                self.refresh(app)
            self._fire()

    def hold_changed(self, app: str) -> None:
        """A peer's proposal started or stopped holding `app`: report what serves now."""
        self.refresh(app)
        self._fire()

    def slices_changed(self, keys: set[Key]) -> None:
        affected: set[Service] = set()
        for key in keys:
            old = self._slice_service.pop(key, None)
            if old is not None:
                self._slice_index[old].discard(key)
                if not self._slice_index[old]:
                    del self._slice_index[old]
                affected.add(old)
            obj = self._slices.get(key)
            name = service_of(obj) if obj is not None else None
            if name is not None:
                service = (key[0], name)
                self._slice_service[key] = service
                self._slice_index.setdefault(service, set()).add(key)
                affected.add(service)
        if not self._slices_synced:
            self._slices_synced = True
            affected = set(self._by_service)
        for service in affected:
            for app in self._by_service.get(service, ()):
                self.refresh(app)
        self._fire()

    # -- what the platform reads -----------------------------------------------------------

    def spec(self, app: str) -> AppSpec | None:
        return self.catalog.apps.get(app)

    def changed(self) -> asyncio.Event:
        """Set at the next change of any Deployment or slice (then replaced)."""
        return self._changed

    def poke(self) -> None:
        """Wake whoever waits on `changed()`: something they check besides us changed."""
        self._fire()

    def desired(self, spec: AppSpec) -> int:
        key = (spec.namespace, spec.deployment)
        written = self._written.get(key)
        if written is not None:
            return written.replicas
        obj = self._deployments.get(key)
        return desired_replicas(obj) if obj is not None else 0

    def at_zero(self, app: str) -> bool:
        """Whether `app`'s Deployment wants zero replicas now (as far as we know)."""
        spec = self.spec(app)
        return spec is not None and self.desired(spec) == 0

    def addresses(self, spec: AppSpec) -> PodAddresses:
        keys = self._slice_index.get((spec.namespace, spec.service), ())
        return addresses_of((self._slices[k] for k in keys if k in self._slices), spec.port)

    def serving(self, spec: AppSpec) -> tuple[Endpoint, ...]:
        """Endpoints that take requests now (ready, or found answering by a probe)."""
        if self.desired(spec) == 0:
            self._probed.pop(spec.name, None)
            return ()
        if self._holding(spec.name):
            return ()  # a peer is putting it to sleep: hold requests until that ends
        addresses = self.addresses(spec)
        kept = self._probed.get(spec.name, set()) & addresses.starting
        if kept:
            self._probed[spec.name] = kept
        else:
            self._probed.pop(spec.name, None)
        return _ordered(addresses.ready | kept)

    # -- what the platform tells -----------------------------------------------------------

    def wrote(self, spec: AppSpec, written: Written) -> None:
        self._written[(spec.namespace, spec.deployment)] = written

    def probed(self, spec: AppSpec, answering: set[Endpoint]) -> None:
        self._probed.setdefault(spec.name, set()).update(answering)

    def woke(self, spec: AppSpec, endpoints: tuple[Endpoint, ...]) -> None:
        """A wake returned `endpoints`: the lifecycle now shows exactly those."""
        self._reported[spec.name] = endpoints

    def slept(self, spec: AppSpec) -> None:
        """A sleep ended: the lifecycle shows none; report at once what still serves."""
        self._reported[spec.name] = ()
        self.refresh(spec.name)

    def refresh(self, app: str) -> None:
        if not self._slices_synced or not self._records_synced or self._policies is None:
            return
        spec = self.catalog.apps.get(app)
        if spec is None:
            return
        endpoints = self.serving(spec)
        if endpoints != self._reported.get(app, ()):
            self._reported[app] = endpoints
            self._emit(EndpointsChanged(app, endpoints))

    # -- internals ---------------------------------------------------------------------

    def _rebuild(self) -> None:
        valid = [s for s in self._specs.values() if isinstance(s, AppSpec)]
        invalid = {app_name(*k): s for k, s in self._specs.items() if isinstance(s, str)}
        catalog = build_catalog(valid, invalid)
        for app, reason in catalog.refused.items():
            if self._refusals.get(app) != reason:
                log.warning("deployment refused as an app", app=app, reason=reason)
        for app in self._refusals.keys() - catalog.refused.keys():
            log.info("deployment no longer refused", app=app)
        self._refusals = dict(catalog.refused)
        self._stats.apps_refused = dict(catalog.refused)
        self.catalog = catalog
        self._by_service = {}
        for spec in catalog.apps.values():
            self._by_service.setdefault((spec.namespace, spec.service), set()).add(spec.name)
        for app in [a for a in self._reported if a not in catalog.apps]:
            del self._reported[app]
            self._probed.pop(app, None)
        policies = tuple(sorted((s.policy for s in catalog.apps.values()), key=lambda p: p.name))
        if policies != self._policies:
            self._policies = policies
            self._emit(AppsChanged(policies))
        for app in catalog.apps:
            self.refresh(app)

    def _fire(self) -> None:
        old, self._changed = self._changed, asyncio.Event()
        old.set()


def _version(obj: JSON) -> str | None:
    rv = (obj.get("metadata") or {}).get("resourceVersion")
    return str(rv) if rv else None
