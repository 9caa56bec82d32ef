"""Leader election on a coordination.k8s.io/v1 Lease: at most one replica sweeps.

Every `duration / 4` seconds: read the Lease. The holder renews it (a write with the
read's resourceVersion, so two writers never both win). A follower takes it only once
the holder's record has not changed for the record's `leaseDurationSeconds` as timed
by the follower's own monotonic clock (no trust in other nodes' clocks), or at once if
nobody holds it. The holder stops leading by itself when it could not renew for two
thirds of the duration — before any follower may take over — so two replicas never lead
at once. `release()` hands the Lease back on a clean shutdown for a fast failover.
Times are written as MicroTime: UTC with exactly six fraction digits and `Z`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from wakeproxy.model.clock import Clock
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.errors import ApiError, Conflict, NotFound

log = structlog.get_logger("wakeproxy.kubernetes")


def micro_time(wall: float) -> str:
    """A metav1.MicroTime the API server accepts: `2006-01-02T15:04:05.000000Z`."""
    return datetime.fromtimestamp(wall, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        *,
        api: Api,
        namespace: str,
        name: str,
        identity: str,
        duration: float,
        clock: Clock,
        stats: PlatformStats,
        on_change: Callable[[bool], None] = lambda leading: None,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._duration = duration
        self._seconds = max(1, math.ceil(duration))
        self._retry = duration / 4
        self._renew_deadline = duration * 2 / 3
        self._clock = clock
        self._stats = stats
        self._on_change = on_change
        self.leading = False
        self.acquired_at: float | None = None  # monotonic, of the current term
        self._renewed_at = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    async def run(self) -> None:
        while True:
            try:
                await self.step()
            except ApiError as e:
                log.warning("lease not read or written", lease=self._name, status=e.status,
                            error=e.message)
            if self.leading and self._clock.monotonic() - self._renewed_at >= self._renew_deadline:
                self._set(False, "the lease could not be renewed in time")
            await asyncio.sleep(self._retry)

    async def step(self) -> None:
        """One read and, when due, one write of the Lease."""
        coordination = self._api.coordination
        now = self._clock.monotonic()
        try:
            lease = await self._api.call(
                coordination.read_namespaced_lease, self._name, self._namespace)
        except NotFound:
            body = self._body(None, acquire=True, transitions=0)
            try:
                await self._api.call(coordination.create_namespaced_lease, self._namespace, body)
            except Conflict:
                return  # another replica created it first
            self._won(now)
            return
        spec: JSON = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or None
        version = (lease.get("metadata") or {}).get("resourceVersion")
        observed = (holder, spec.get("renewTime"), version)
        if observed != self._observed:
            self._observed, self._observed_at = observed, now
        duration = spec.get("leaseDurationSeconds") or self._seconds
        if holder == self.identity:
            body = self._body(lease, acquire=False, transitions=spec.get("leaseTransitions"))
        elif holder is not None and now - self._observed_at < duration:
            if self.leading:
                self._set(False, f"the lease is held by {holder}")
            return
        else:
            transitions = int(spec.get("leaseTransitions") or 0) + (1 if holder else 0)
            body = self._body(lease, acquire=True, transitions=transitions)
        try:
            await self._api.call(
                coordination.replace_namespaced_lease, self._name, self._namespace, body)
        except Conflict:
            return  # someone wrote in between: the next read tells who holds it
        self._won(now)

    async def release(self) -> None:
        """Give the lease up (a clean shutdown), so a follower takes over at once."""
        if not self.leading:
            return
        self._set(False, "shutting down")
        coordination = self._api.coordination
        try:
            lease = await self._api.call(
                coordination.read_namespaced_lease, self._name, self._namespace)
            spec: JSON = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            body = self._body(lease, acquire=False, transitions=spec.get("leaseTransitions"))
            body["spec"].pop("holderIdentity", None)
            body["spec"]["leaseDurationSeconds"] = 1
            await self._api.call(
                coordination.replace_namespaced_lease, self._name, self._namespace, body)
        except ApiError as e:
            log.warning("lease not released; it expires by itself", status=e.status,
                        error=e.message)

    def _won(self, now: float) -> None:
        self._renewed_at = now
        if not self.leading:
            self.acquired_at = now
            self._set(True, "acquired")

    def _set(self, leading: bool, why: str) -> None:
        self.leading = leading
        self._stats.leader = leading
        if leading:
            log.info("leading: this replica now decides sleeps", identity=self.identity,
                     lease=self._name)
        else:
            self.acquired_at = None
            log.warning("no longer leading", identity=self.identity, reason=why)
        self._on_change(leading)

    def _body(self, lease: JSON | None, *, acquire: bool, transitions: Any) -> JSON:
        stamp = micro_time(self._clock.wall())
        old: JSON = (lease or {}).get("spec") or {}
        spec: JSON = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._seconds,
            "acquireTime": stamp if acquire or not old.get("acquireTime") else old["acquireTime"],
            "renewTime": stamp,
            "leaseTransitions": int(transitions or 0),
        }
        meta: JSON = {"name": self._name, "namespace": self._namespace}
        if lease is not None:
            meta["resourceVersion"] = (lease.get("metadata") or {}).get("resourceVersion")
            for kept in ("labels", "annotations"):
                if (lease.get("metadata") or {}).get(kept):
                    meta[kept] = lease["metadata"][kept]
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}
