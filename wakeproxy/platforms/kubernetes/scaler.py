"""Replica counts through the `scale` subresource, never overwriting another writer.

Each change reads the Scale, decides from what it read, and writes it back with that
read's resourceVersion as a precondition. A 409 means someone else (an HPA, a person,
another wakeproxy replica) wrote in between: read again and decide again — so two
replicas waking one app make one scale call, and a sleep never undoes someone else's
scale-up. Transient failures (no answer, 429, 5xx) are retried with backoff that honours
Retry-After until the caller's deadline. Counts every write in PlatformStats by result.

A scale to zero is written as one merge patch of the Deployment (with the same
resourceVersion precondition) that also records the count it replaces in
`wakeproxy.io/replicas-before-sleep`, so the next wake — on any replica, after any
restart — restores it, and whether an operator asked for it (`wakeproxy.io/held-asleep`,
set or removed); scale-ups go through the `scale` subresource, except one that ends such
a hold: a patch that removes the annotation with the count, so the two never disagree.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.annotations import (
    HELD_ASLEEP,
    REPLICAS_BEFORE_SLEEP,
    AppSpec,
)
from wakeproxy.platforms.kubernetes.api import Api
from wakeproxy.platforms.kubernetes.backoff import Backoff
from wakeproxy.platforms.kubernetes.errors import ApiError, Conflict

_MERGE = "application/merge-patch+json"


@dataclass(frozen=True, slots=True)
class Written:
    """What our successful write left: the count and the Deployment's new version."""

    replicas: int
    version: str


class ScaleUnavailable(Exception):
    """The API could not be reached (or kept failing) until the deadline."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ScaleContested(Exception):
    """Someone else changed the replica count meanwhile: their decision stands."""

    def __init__(self, replicas: int) -> None:
        super().__init__(f"someone else scaled it to {replicas}")
        self.replicas = replicas


class Scaler:
    def __init__(self, api: Api, stats: PlatformStats) -> None:
        self._api = api
        self._stats = stats

    async def scale_up(
        self, spec: AppSpec, *, deadline: float, release: bool = False,
    ) -> Written | None:
        """Scale to `awake_replicas` if at zero; None if it already runs (nothing written).
        `release`: the Deployment is held asleep, and this write ends the hold."""
        wanted = spec.policy.awake_replicas
        return await self._change(spec, lambda now: None if now >= 1 else wanted, deadline,
                                  release=release)

    async def scale_down(
        self, spec: AppSpec, *, deadline: float, expect: int | None = None, held: bool = False,
    ) -> Written | None:
        """Scale to zero; None if already at zero (unless `held`: the hold is written).
        Raises ScaleContested if the count is not `expect` (when given), or if someone
        else changes it between our read and our write."""
        expected: list[int] = [] if expect is None else [expect]

        def decide(now: int) -> int | None:
            if now == 0 and not held:
                return None
            if expected and now != expected[0]:
                raise ScaleContested(now)
            expected.append(now)
            return 0

        return await self._change(spec, decide, deadline, held=held)

    async def _change(
        self, spec: AppSpec, decide: Callable[[int], int | None], deadline: float, *,
        held: bool = False, release: bool = False,
    ) -> Written | None:
        backoff = Backoff(initial=0.05, maximum=2.0)
        last: ApiError | None = None
        try:
            async with asyncio.timeout_at(deadline):
                while True:
                    try:
                        return await self._attempt(spec, decide, held, release)
                    except Conflict:
                        continue  # another writer came first: read again, decide again
                    except ApiError as e:
                        if not e.transient:
                            raise
                        last = e
                    # Keep trying until the deadline cuts in: the API may be back by then.
                    await asyncio.sleep(backoff.delay(last))
        except TimeoutError:
            raise ScaleUnavailable(_unavailable(last)) from None

    async def _attempt(
        self, spec: AppSpec, decide: Callable[[int], int | None], held: bool, release: bool,
    ) -> Written | None:
        apps = self._api.apps
        scale = await self._api.call(
            apps.read_namespaced_deployment_scale, spec.deployment, spec.namespace)
        replicas = (scale.get("spec") or {}).get("replicas") or 0
        target = decide(int(replicas))
        if target is None:
            return None
        version = (scale.get("metadata") or {}).get("resourceVersion")
        try:
            if target == 0 or release:
                # The count and what it replaced in one write: no sleep without its record.
                notes: dict[str, str | None] = {HELD_ASLEEP: "true" if held else None}
                if target == 0 and int(replicas) > 0:
                    notes[REPLICAS_BEFORE_SLEEP] = str(int(replicas))
                patch = {"metadata": {"resourceVersion": version, "annotations": notes},
                         "spec": {"replicas": target}}
                written = await self._api.call(
                    apps.patch_namespaced_deployment, spec.deployment, spec.namespace, patch,
                    _content_type=_MERGE)
            else:
                body = {
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": spec.deployment, "namespace": spec.namespace,
                                 "resourceVersion": version},
                    "spec": {"replicas": target},
                }
                written = await self._api.call(
                    apps.replace_namespaced_deployment_scale, spec.deployment, spec.namespace,
                    body)
        except Conflict:
            self._stats.scale_called("conflict")
            raise
        except ApiError:
            self._stats.scale_called("error")
            raise
        self._stats.scale_called("ok")
        version = str((written.get("metadata") or {}).get("resourceVersion") or "")
        return Written(target, version)


def _unavailable(last: ApiError | None) -> str:
    if last is None:
        return "the Kubernetes API did not answer in time"
    if last.status == 0:
        return last.message
    return f"the Kubernetes API kept failing (HTTP {last.status}: {last.message})"
