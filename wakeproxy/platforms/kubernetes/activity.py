"""Sharing activity between replicas: one write per replica per interval, whatever the load.

Every `interval`, each replica writes ONE object — its own Lease `<lease>-activity-<id>`
(label `wakeproxy.io/activity: "true"`) — whose annotation holds, for every app used
recently on this replica, the last access as wall time and the requests and tunnels open
now. The leader lists those Leases (one read per interval) and feeds each changed record
into PeerActivity, converted to its own monotonic clock, so its sweeper decides on
cluster-wide activity. Apps idle for longer than their `idle_after` are left out of the
record: they could not change a sweep decision, and the record stays small. The leader
also deletes records left behind by replicas that are long gone. Never decides a sleep.
"""

from __future__ import annotations

import asyncio
import json
import math
import re

import structlog

from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.peers import PeerActivity, PeerApp
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.elector import micro_time
from wakeproxy.platforms.kubernetes.errors import ApiError, Conflict, NotFound

log = structlog.get_logger("wakeproxy.kubernetes")

ACTIVITY_LABEL = "wakeproxy.io/activity"
ACTIVITY_ANNOTATION = "wakeproxy.io/activity"
# Annotations of one object may not exceed 256 KiB in total; stay well below.
_MAX_RECORD = 200_000
# A record unchanged for this many stale periods belongs to a replica that is gone.
_GONE_AFTER_STALE_PERIODS = 20


def record_name(lease_name: str, identity: str) -> str:
    safe = re.sub(r"[^a-z0-9.-]+", "-", identity.lower()).strip("-.") or "replica"
    return f"{lease_name}-activity-{safe}"[:253].rstrip("-.")


class ActivitySync:
    def __init__(
        self,
        *,
        api: Api,
        namespace: str,
        lease_name: str,
        identity: str,
        interval: float,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        peers: PeerActivity,
        clock: Clock,
    ) -> None:
        self._api = api
        self._namespace = namespace
        self._prefix = f"{lease_name}-activity-"
        self._name = record_name(lease_name, identity)
        self.identity = identity
        self._interval = interval
        self._board = board
        self._ledger = ledger
        self._peers = peers
        self._clock = clock
        self._version: str | None = None
        self._seen: dict[str, str] = {}  # peer record name → version last read
        self._changed_at: dict[str, float] = {}  # peer record name → when it last changed
        self._read_now = asyncio.Event()
        self._leading = False

    def leading_changed(self, leading: bool) -> None:
        """The elector's news: a new leader reads its peers at once, not an interval later."""
        self._leading = leading
        if leading:
            self._read_now.set()

    async def run(self) -> None:
        while True:
            try:
                await self.publish()
            except ApiError as e:
                log.warning("activity not published", status=e.status, error=e.message)
            if self._leading:
                try:
                    await self.read_peers()
                except ApiError as e:
                    log.warning("peer activity not read", status=e.status, error=e.message)
            try:
                async with asyncio.timeout(self._interval):
                    await self._read_now.wait()
            except TimeoutError:
                pass
            self._read_now.clear()

    # -- this replica's record ---------------------------------------------------------

    def snapshot(self) -> dict[str, list[float | int | None]]:
        """Apps used recently here: name → [last access (wall), open requests + tunnels]."""
        mono, wall = self._clock.monotonic(), self._clock.wall()
        apps: dict[str, list[float | int | None]] = {}
        for state in self._board:
            a = self._ledger.peek(state.name)
            if a is None:
                continue
            open_now = max(0, a.in_flight) + max(0, a.tunnels)
            recent = a.last_access is not None and (
                mono - a.last_access < state.policy.idle_after + 2 * self._interval)
            if not (open_now or recent):
                continue
            last = None if a.last_access is None else round(wall - (mono - a.last_access), 3)
            apps[state.name] = [last, open_now]
        return apps

    def _encode(self, apps: dict[str, list[float | int | None]]) -> str:
        text = json.dumps({"apps": apps}, separators=(",", ":"))
        if len(text) <= _MAX_RECORD:
            return text
        # Keep what matters most: open requests first, then the latest accesses.
        ranked = sorted(apps.items(), key=lambda kv: (-int(kv[1][1] or 0), -(kv[1][0] or 0.0)))
        kept = dict(ranked[: max(1, len(ranked) * _MAX_RECORD // len(text) * 9 // 10)])
        log.warning("activity record too large; the least recent apps are left out",
                    apps=len(apps), kept=len(kept))
        return json.dumps({"apps": kept}, separators=(",", ":"))

    def _body(self) -> JSON:
        meta: JSON = {
            "name": self._name, "namespace": self._namespace,
            "labels": {ACTIVITY_LABEL: "true", "app.kubernetes.io/managed-by": "wakeproxy"},
            "annotations": {ACTIVITY_ANNOTATION: self._encode(self.snapshot())},
        }
        if self._version:
            meta["resourceVersion"] = self._version
        spec = {"holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, math.ceil(self._peers.stale_after)),
                "renewTime": micro_time(self._clock.wall())}
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}

    async def publish(self) -> None:
        """Write this replica's record: the one write per interval."""
        coordination = self._api.coordination
        try:
            if self._version is None:
                written = await self._api.call(
                    coordination.create_namespaced_lease, self._namespace, self._body())
            else:
                written = await self._api.call(
                    coordination.replace_namespaced_lease, self._name, self._namespace,
                    self._body())
        except (Conflict, NotFound):
            # It exists from an earlier run, or vanished, or our version is stale: learn
            # the current version and write on the next tick.
            self._version = None
            try:
                current = await self._api.call(
                    coordination.read_namespaced_lease, self._name, self._namespace)
                self._version = str((current.get("metadata") or {}).get("resourceVersion"))
            except NotFound:
                pass
            return
        self._version = str((written.get("metadata") or {}).get("resourceVersion") or "") or None

    async def remove(self) -> None:
        """Delete this replica's record (a clean shutdown): it no longer counts anywhere."""
        try:
            await self._api.call(
                self._api.coordination.delete_namespaced_lease, self._name, self._namespace)
        except NotFound:
            pass
        except ApiError as e:
            log.warning("activity record not removed; it expires by itself", error=e.message)

    # -- the peers (leader only) ---------------------------------------------------------

    async def read_peers(self) -> None:
        body = await self._api.call(
            self._api.coordination.list_namespaced_lease, self._namespace,
            label_selector=f"{ACTIVITY_LABEL}=true")
        now, wall = self._clock.monotonic(), self._clock.wall()
        present: set[str] = set()
        for item in body.get("items") or []:
            meta = item.get("metadata") or {}
            name = str(meta.get("name") or "")
            if not name.startswith(self._prefix) or name == self._name:
                continue
            present.add(name)
            version = str(meta.get("resourceVersion") or "")
            if self._seen.get(name) == version:
                if now - self._changed_at.get(name, now) > self._gone_after():
                    await self._delete_gone(name, version)
                continue
            self._seen[name] = version
            self._changed_at[name] = now
            self._peers.update(name, self._decode(item, now, wall), now)
        for name in set(self._seen) - present:
            del self._seen[name]
            self._changed_at.pop(name, None)
            self._peers.forget(name)
        self._peers.synced(now)

    async def used_lately(self, app: str, idle_after: float) -> bool:
        """Whether a peer used `app` within `idle_after`, by records written after this call.

        A sweep decides on records up to about two intervals old, so a request a follower
        took since then is unknown to it; scaling down on that would cut the request off.
        Reads every fresh peer's record until each has been written again (or about two
        intervals passed, for a peer that stopped writing), then asks the merged view.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.5 * self._interval
        await self.read_peers()
        now = self._clock.monotonic()
        before = {p: self._seen.get(p) for p in self._peers.fresh_peers(now)}
        pause = min(max(0.02, self._interval / 8), self._interval)
        while any(self._seen.get(p) == v for p, v in before.items()):
            if loop.time() >= deadline:
                break
            await asyncio.sleep(pause)
            await self.read_peers()
        now = self._clock.monotonic()
        seen = self._peers.merged(app, now)
        if seen is None:
            return False
        return seen.in_flight > 0 or (
            seen.last_access is not None and now - seen.last_access < idle_after)

    def _gone_after(self) -> float:
        return self._peers.stale_after * _GONE_AFTER_STALE_PERIODS

    async def _delete_gone(self, name: str, version: str) -> None:
        try:
            await self._api.call(
                self._api.coordination.delete_namespaced_lease, name, self._namespace,
                body={"preconditions": {"resourceVersion": version}})
        except (NotFound, Conflict):
            return
        log.info("removed the activity record of a replica that is gone", record=name)

    @staticmethod
    def _decode(item: JSON, now: float, wall: float) -> dict[str, PeerApp]:
        annotations = (item.get("metadata") or {}).get("annotations") or {}
        try:
            doc = json.loads(annotations.get(ACTIVITY_ANNOTATION) or "{}")
            raw = doc.get("apps") or {}
        except (ValueError, AttributeError):
            return {}
        apps: dict[str, PeerApp] = {}
        for app, entry in raw.items() if isinstance(raw, dict) else ():
            if not isinstance(entry, list) or len(entry) != 2:
                continue
            last, open_now = entry
            mono = None
            if isinstance(last, int | float) and not isinstance(last, bool):
                # A peer's wall time → our monotonic clock (nodes keep wall clocks in step).
                mono = now - (wall - float(last))
            count = open_now if isinstance(open_now, int) and not isinstance(open_now, bool) else 0
            apps[str(app)] = PeerApp(mono, max(0, count))
        return apps

