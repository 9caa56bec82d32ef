"""Recent GitHub webhook delivery ids, shared by every replica through one Lease.

The Lease `<lease_name>-deliveries` in wakeproxy's lease namespace holds, in its
annotation `wakeproxy.io/deliveries`, a JSON object of delivery id → receive time (whole
seconds, wall clock), oldest first. A delivery is checked and recorded in one
read-check-write whose write carries the read's resourceVersion: of two replicas that
receive the same id at once, exactly one write succeeds; the other gets 409, reads again
and finds the id. So a redelivery is a duplicate on every replica and after a restart.

Bounded: at most `LIMIT` ids and none older than `WINDOW`, the oldest dropped first. An
id longer than `MAX_KEY` characters or with characters other than letters, digits and
`._:-` (GitHub's are 36-character UUIDs) is kept as its SHA-256 instead. One entry is
then at most 78 bytes of JSON, so the annotation stays under 160 KB: well below the
256 KiB the API server allows for all annotations of an object.

Never blocks a webhook for long: the whole check (waiting for this replica's earlier
check, every read, write and re-read) gets at most `BUDGET` seconds, and no more than the
platform's request timeout. When the API does not answer in time or refuses, the answer
is "unknown" (None) and a warning is logged: the caller then relies on its own memory
rather than drop a delivery that may be new.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import Callable

import structlog

from wakeproxy.model.clock import Clock
from wakeproxy.model.recent import RecentIds
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.errors import ApiError, Conflict, NotFound

log = structlog.get_logger("wakeproxy.kubernetes")

ANNOTATION = "wakeproxy.io/deliveries"
# 2,000 ids: far more pull request events than a team sends in a redelivery window,
# and 2,000 entries of at most 78 bytes stay under 160 KB (the API's limit is 256 KiB).
LIMIT = 2_000
# Seconds; the longest redelivery window GitHub offers (Enterprise Server: 7 days;
# GitHub.com: 3), the same as the in-memory and local-platform dedupe.
WINDOW = 7 * 24 * 3600.0
MAX_KEY = 64  # characters of an id kept as is; longer ones are kept as their SHA-256
_PLAIN = re.compile(rf"[A-Za-z0-9._:-]{{1,{MAX_KEY}}}")  # written into JSON as is
# Seconds for one whole check: GitHub gives up on a delivery after 10 s, and the check
# comes before the answer.
BUDGET = 5.0
# Conflicts in a row before giving up (each means another replica wrote meanwhile).
_ATTEMPTS = 8


def log_name(lease_name: str) -> str:
    """The Lease that holds the delivery ids: `<lease_name>-deliveries`."""
    return f"{lease_name}-deliveries"[:253].rstrip("-.")


def key_of(delivery: str) -> str:
    """How `delivery` is stored: as is, or as its SHA-256 (64 hex digits) when it is long
    or has characters JSON would escape (each entry's size stays bounded)."""
    if _PLAIN.fullmatch(delivery):
        return delivery
    return hashlib.sha256(delivery.encode()).hexdigest()


def parse_records(lease: JSON | None) -> dict[str, int]:
    """The (id → received at) of a Lease's annotation, oldest first; junk is skipped."""
    annotations = ((lease or {}).get("metadata") or {}).get("annotations") or {}
    raw = annotations.get(ANNOTATION)
    if not isinstance(raw, str):
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(doc, dict):
        return {}
    records = {k: v for k, v in doc.items()
               if isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)}
    return dict(sorted(records.items(), key=lambda r: r[1]))


class LeaseDeliveryLog:
    """`first_time(id)`: True once across every replica, False after, None when unknown."""

    def __init__(self, *, api: Callable[[], Api], namespace: str, lease_name: str,
                 clock: Clock, limit: int = LIMIT, window: float = WINDOW,
                 budget: float = BUDGET) -> None:
        self._api = api
        self._namespace = namespace
        self.name = log_name(lease_name)
        self._clock = clock
        self._limit = limit
        self._window = window
        self._budget = budget
        # One check at a time per replica: concurrent ones would only conflict with
        # each other's writes.
        self._lock = asyncio.Lock()

    async def first_time(self, delivery: str, *more: str) -> bool | None:
        """Record `delivery` and `more` keys of it (its body's digest); False when any
        replica recorded any of them already (within the bounds), None when the Lease
        could not be read or written in time."""
        api = self._api()
        try:
            async with asyncio.timeout(min(self._budget, api.timeout)):
                async with self._lock:
                    return await self._check(api, [key_of(k) for k in (delivery, *more)])
        except TimeoutError:
            why, status = f"no answer within {min(self._budget, api.timeout):g}s", 0
        except ApiError as e:
            why, status = e.message, e.status
        log.warning("webhook delivery checked on this replica only: the shared delivery "
                    "log could not be read or written", delivery=delivery, lease=self.name,
                    status=status, reason=why)
        return None

    async def _check(self, api: Api, keys: list[str]) -> bool:
        coordination = api.coordination
        for _ in range(_ATTEMPTS):
            try:
                lease: JSON | None = await api.call(
                    coordination.read_namespaced_lease, self.name, self._namespace)
            except NotFound:
                lease = None
            recent = RecentIds(self._limit, self._window)
            now = int(self._clock.wall())
            recent.restore(parse_records(lease).items(), now)
            if not recent.add_all(keys, now):
                return False
            records = {k: int(at) for k, at in recent.records()}
            try:
                if lease is None:
                    await api.call(coordination.create_namespaced_lease, self._namespace,
                                   self._body(None, records))
                else:
                    await api.call(coordination.replace_namespaced_lease, self.name,
                                   self._namespace, self._body(lease, records))
            except Conflict:
                continue  # another replica wrote (or created it) first: read its ids
            return True
        raise ApiError(f"the Lease changed under {_ATTEMPTS} writes in a row", status=409)

    def _body(self, lease: JSON | None, records: dict[str, int]) -> JSON:
        old: JSON = (lease or {}).get("metadata") or {}
        meta: JSON = {
            "name": self.name, "namespace": self._namespace,
            "labels": {**(old.get("labels") or {}),
                       "app.kubernetes.io/managed-by": "wakeproxy"},
            "annotations": {**(old.get("annotations") or {}),
                            ANNOTATION: json.dumps(records, separators=(",", ":"))},
        }
        if lease is not None:
            meta["resourceVersion"] = old.get("resourceVersion")
        # No holder: this Lease is a shared record, never an election.
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": (lease or {}).get("spec") or {}}
