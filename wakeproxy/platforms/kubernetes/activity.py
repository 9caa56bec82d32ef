"""Sharing activity between replicas: one write per replica per interval, whatever the load.

Every `interval`, each replica writes ONE object — its own Lease `<lease>-activity-<id>`
(label `wakeproxy.io/activity: "true"`) — whose annotation holds, for every app used
recently on this replica, the last access and the requests and tunnels open now, and
the time the record was written (`at`, by the same clock). Every replica watches those
Leases; each changed record is fed into PeerActivity, its accesses converted to this
replica's monotonic clock by their age at writing (`at` minus the last access), so replicas'
wall clocks need not agree; the leader's sweeper decides on
cluster-wide activity. Apps idle for longer than their `idle_after` are left out of the
record: they could not change a sweep decision, and the record stays small. The leader
also deletes records left behind by replicas that are long gone.

The same records carry the two-phase sleep (see drains.py): the leader's record proposes
sleeps (`sleep`: app → [token, ttl]), the others answer (`drain`: app → [token, "done" |
"wanted"]), and a replica writes at once — not an interval later — when its answers or
proposals change. Never decides a sleep.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import secrets
from collections.abc import Callable, Mapping

import structlog

from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.peers import PeerActivity, PeerApp
from wakeproxy.model.stats import PlatformStats
from wakeproxy.platforms.kubernetes.api import JSON, Api
from wakeproxy.platforms.kubernetes.drains import DONE, WANTED, Drains, Proposal
from wakeproxy.platforms.kubernetes.elector import micro_time
from wakeproxy.platforms.kubernetes.errors import ApiError, Conflict, NotFound
from wakeproxy.platforms.kubernetes.watcher import Key

log = structlog.get_logger("wakeproxy.kubernetes")

ACTIVITY_LABEL = "wakeproxy.io/activity"
ACTIVITY_ANNOTATION = "wakeproxy.io/activity"
# Annotations of one object may not exceed 256 KiB in total; stay well below.
_MAX_RECORD = 200_000
# A record unchanged for this many stale periods belongs to a replica that is gone.
_GONE_AFTER_STALE_PERIODS = 20
# How long the leader waits for every peer's answer to a sleep proposal. Answers are
# written as soon as a peer has drained (not on its interval), so this only bounds a
# peer that keeps a request open or cannot write.
AGREE_WITHIN = 2.0
# While a proposal awaits our answer, how often we look whether the app has drained here.
_DRAIN_POLL = 0.01
# After a failed write, the earliest next try (the interval still bounds it).
_RETRY_AFTER_FAILURE = 0.2
# The scale-down must be written this long before the peers' hold of the app runs out.
_SCALE_MARGIN = 1.0
# A peer's proposal holds an app here for at most this long, whatever its record says.
_MAX_TTL = 120.0


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
        drains: Drains,
        records: Mapping[Key, JSON],
        records_current: Callable[[], bool],
        proposal_ttl: float,
        stats: PlatformStats,
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
        self._drains = drains
        self._records = records  # the watch cache of every replica's record
        self._records_current = records_current
        self._proposal_ttl = proposal_ttl
        self._stats = stats
        self._clock = clock
        self._version: str | None = None
        self._seen: dict[str, str] = {}  # peer record name → version last read
        self._changed_at: dict[str, float] = {}  # peer record name → when it last changed
        self._answers: dict[str, dict[str, tuple[str, str]]] = {}  # peer → app → answer
        # Our sleep proposals: app → (token, monotonic time proposed).
        self._proposals: dict[str, tuple[str, float]] = {}
        self._token_prefix = secrets.token_hex(4)
        self._tokens = 0
        self._sent: object = None  # (proposals, answers) as last written
        self._nudge = asyncio.Event()
        self._heard = asyncio.Event()
        self._leading = False

    def leading_changed(self, leading: bool) -> None:
        """The elector's news: a new leader looks at its peers at once, not an interval later."""
        self._leading = leading
        if leading:
            self._nudge.set()

    def nudge(self) -> None:
        """Something for our record changed (an answer, a proposal): write it now."""
        self._nudge.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_write = retry_at = loop.time()
        while True:
            now = loop.time()
            answers = self._drains.answers()
            news = self._news(answers)
            if now >= next_write or (news and now >= retry_at):
                written = await self._publish_quietly(answers)
                now = loop.time()
                next_write = now + self._interval
                if written is None:  # only our version was stale: write again at once
                    next_write = now
                retry_at = now if written is not False else now + _RETRY_AFTER_FAILURE
                news = written is not True and news
            if self._leading:
                await self._tend_peers()
            wake_at = next_write
            if news:
                wake_at = min(wake_at, retry_at)
            if self._drains.pending():
                wake_at = min(wake_at, now + _DRAIN_POLL)
            try:
                async with asyncio.timeout(max(0.0, wake_at - loop.time())):
                    await self._nudge.wait()
            except TimeoutError:
                pass
            self._nudge.clear()

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

    def _encode(self, apps: dict[str, list[float | int | None]], extra: JSON) -> str:
        text = json.dumps({"apps": apps, **extra}, separators=(",", ":"))
        if len(text) <= _MAX_RECORD:
            return text
        # Keep what matters most: open requests first, then the latest accesses.
        ranked = sorted(apps.items(), key=lambda kv: (-int(kv[1][1] or 0), -(kv[1][0] or 0.0)))
        kept = dict(ranked[: max(1, len(ranked) * _MAX_RECORD // len(text) * 9 // 10)])
        log.warning("activity record too large; the least recent apps are left out",
                    apps=len(apps), kept=len(kept))
        return json.dumps({"apps": kept, **extra}, separators=(",", ":"))

    def _proposed(self) -> dict[str, list[str | float]]:
        """Our live proposals as written: app → [token, ttl]. Expired ones are dropped."""
        now = self._clock.monotonic()
        for app in [a for a, (_, at) in self._proposals.items()
                    if now - at >= self._proposal_ttl]:
            del self._proposals[app]
        return {app: [token, self._proposal_ttl] for app, (token, _) in self._proposals.items()}

    def _news(self, answers: dict[str, list[str]]) -> bool:
        return (self._proposed(), answers) != self._sent

    def _body(self, answers: dict[str, list[str]]) -> tuple[JSON, object]:
        proposed = self._proposed()
        extra: JSON = {}
        if proposed:
            extra["sleep"] = proposed
        if answers:
            extra["drain"] = answers
        # What the last accesses are measured against: a reader uses ages, not our clock.
        extra["at"] = round(self._clock.wall(), 3)
        meta: JSON = {
            "name": self._name, "namespace": self._namespace,
            "labels": {ACTIVITY_LABEL: "true", "app.kubernetes.io/managed-by": "wakeproxy"},
            "annotations": {ACTIVITY_ANNOTATION: self._encode(self.snapshot(), extra)},
        }
        if self._version:
            meta["resourceVersion"] = self._version
        spec = {"holderIdentity": self.identity,
                "leaseDurationSeconds": max(1, math.ceil(self._peers.stale_after)),
                "renewTime": micro_time(self._clock.wall())}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta,
                "spec": spec}
        return body, (proposed, answers)

    async def _publish_quietly(self, answers: dict[str, list[str]]) -> bool | None:
        try:
            return await self.publish(answers)
        except ApiError as e:
            log.warning("activity not published", status=e.status, error=e.message)
            return False

    async def publish(self, answers: dict[str, list[str]] | None = None) -> bool | None:
        """Write this replica's record: the one write per interval (or sooner, for news).

        True: written. None: not written, but the version is learnt and a write may follow
        at once. Raises ApiError for anything else.
        """
        coordination = self._api.coordination
        body, sent = self._body(self._drains.answers() if answers is None else answers)
        try:
            if self._version is None:
                written = await self._api.call(
                    coordination.create_namespaced_lease, self._namespace, body)
            else:
                written = await self._api.call(
                    coordination.replace_namespaced_lease, self._name, self._namespace, body)
        except (Conflict, NotFound):
            # It exists from an earlier run, or vanished, or our version is stale: learn
            # the current version and write again.
            self._version = None
            try:
                current = await self._api.call(
                    coordination.read_namespaced_lease, self._name, self._namespace)
                self._version = str((current.get("metadata") or {}).get("resourceVersion"))
            except NotFound:
                pass
            return None
        self._version = str((written.get("metadata") or {}).get("resourceVersion") or "") or None
        self._sent = sent
        return True

    async def remove(self) -> None:
        """Delete this replica's record (a clean shutdown): it no longer counts anywhere."""
        try:
            await self._api.call(
                self._api.coordination.delete_namespaced_lease, self._name, self._namespace)
        except NotFound:
            pass
        except ApiError as e:
            log.warning("activity record not removed; it expires by itself", error=e.message)

    # -- the peers ---------------------------------------------------------------------------

    def records_changed(self, keys: set[Key]) -> None:
        """The watch saw these records change: read each new version once."""
        now, wall = self._clock.monotonic(), self._clock.wall()
        for key in keys:
            name = key[1]
            if not name.startswith(self._prefix) or name == self._name:
                continue
            item = self._records.get(key)
            if item is None:
                self._drop(name)
                continue
            version = str((item.get("metadata") or {}).get("resourceVersion") or "")
            if self._seen.get(name) == version:
                continue
            self._seen[name] = version
            self._changed_at[name] = now
            doc = _document(item)
            self._peers.update(name, _apps(doc, now, wall), now)
            self._answers[name] = _answers(doc)
            self._drains.proposals_seen(name, _proposals(name, doc))
        old, self._heard = self._heard, asyncio.Event()
        old.set()

    def _drop(self, name: str) -> None:
        self._seen.pop(name, None)
        self._changed_at.pop(name, None)
        self._answers.pop(name, None)
        self._peers.forget(name)
        self._drains.peer_gone(name)

    async def _tend_peers(self) -> None:
        """The leader's care: mark peers synced while the watch is current, and delete
        the records of replicas long gone."""
        now = self._clock.monotonic()
        if self._records_current():
            self._peers.synced(now)
        for name, changed in list(self._changed_at.items()):
            if now - changed > self._gone_after():
                await self._delete_gone(name, self._seen.get(name, ""))

    async def agree_to_sleep(
        self, app: str, idle_after: float, busy_here: Callable[[], bool],
    ) -> float | None:
        """Propose to sleep `app` and wait for every fresh peer's answer.

        Returns the loop time by which the scale-down must be written (the peers hold
        the app until a little after it), or None if the sleep is off: a peer wants the
        app, used it within `idle_after` by its answer's record, or did not answer in
        time, or `busy_here()` says a request came here meanwhile. Alone, agrees at once.
        """
        loop = asyncio.get_running_loop()
        if not self._peers.fresh_peers(self._clock.monotonic()):
            return loop.time() + self._proposal_ttl
        token = f"{self._token_prefix}-{self._tokens}"
        self._tokens += 1
        self._proposals[app] = (token, self._clock.monotonic())
        self._nudge.set()
        # The peers count the time to live from when they see the proposal: a bit later.
        must_scale_by = loop.time() + self._proposal_ttl - _SCALE_MARGIN
        outcome = "cancelled"
        try:
            outcome = await self._answered(app, token, idle_after, busy_here)
        finally:
            if outcome != "cancelled":
                self._stats.sleep_proposed(outcome)
            if outcome != "agreed":
                self.withdraw(app)
        return must_scale_by if outcome == "agreed" else None

    async def _answered(
        self, app: str, token: str, idle_after: float, busy_here: Callable[[], bool],
    ) -> str:
        """Wait for the peers' answers to proposal `token`: "agreed", "wanted" or
        "unanswered" (the outcomes as counted)."""
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + AGREE_WITHIN
        while not busy_here():
            now = self._clock.monotonic()
            peers = self._peers.fresh_peers(now)
            said = [self._answers.get(p, {}).get(app) for p in peers]
            if (token, WANTED) in said:
                return "wanted"
            if all(a == (token, DONE) for a in said):
                # Their records, written after the proposal, also say when they last
                # used the app: the sweep decided on older ones.
                seen = self._peers.merged(app, now)
                if seen is not None and (seen.in_flight > 0 or (
                        seen.last_access is not None and now - seen.last_access < idle_after)):
                    return "wanted"
                return "agreed"
            remaining = give_up_at - loop.time()
            if remaining <= 0:
                log.info("sleep proposal not answered in time", app=app,
                         waiting_for=[p for p, a in zip(peers, said, strict=True)
                                      if a != (token, DONE)])
                return "unanswered"
            heard = self._heard
            try:
                async with asyncio.timeout(min(remaining, 4 * _DRAIN_POLL)):
                    await heard.wait()
            except TimeoutError:
                pass
        return "wanted"

    def withdraw(self, app: str) -> None:
        """Give up a proposal: the peers put the app back in rotation."""
        if self._proposals.pop(app, None) is not None:
            self._nudge.set()

    def _gone_after(self) -> float:
        return self._peers.stale_after * _GONE_AFTER_STALE_PERIODS

    async def _delete_gone(self, name: str, version: str) -> None:
        try:
            await self._api.call(
                self._api.coordination.delete_namespaced_lease, name, self._namespace,
                body={"preconditions": {"resourceVersion": version}})
        except (NotFound, Conflict):
            return
        except ApiError as e:
            log.warning("record of a gone replica not removed", record=name, error=e.message)
            return
        self._changed_at.pop(name, None)
        log.info("removed the activity record of a replica that is gone", record=name)


# -- decoding a peer's record (whatever it holds: it is another process's output) ----------

def _document(item: JSON) -> JSON:
    annotations = (item.get("metadata") or {}).get("annotations") or {}
    try:
        doc = json.loads(annotations.get(ACTIVITY_ANNOTATION) or "{}")
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _apps(doc: JSON, now: float, wall: float) -> dict[str, PeerApp]:
    raw = doc.get("apps")
    # The writer's clock when it wrote the record; we see it within the watch's delay,
    # which errs towards recent (an app kept awake a little longer, never cut short).
    # A record without it (an older version) is read against our own wall clock.
    written = float(doc["at"]) if _number(doc.get("at")) else wall
    apps: dict[str, PeerApp] = {}
    for app, entry in raw.items() if isinstance(raw, dict) else ():
        if not isinstance(entry, list) or len(entry) != 2:
            continue
        last, open_now = entry
        mono = None
        if _number(last):
            mono = now - max(0.0, written - float(last))
        count = open_now if isinstance(open_now, int) and not isinstance(open_now, bool) else 0
        apps[str(app)] = PeerApp(mono, max(0, count))
    return apps


def _answers(doc: JSON) -> dict[str, tuple[str, str]]:
    raw = doc.get("drain")
    out: dict[str, tuple[str, str]] = {}
    for app, entry in raw.items() if isinstance(raw, dict) else ():
        if (isinstance(entry, list) and len(entry) == 2
                and all(isinstance(x, str) for x in entry)):
            out[str(app)] = (entry[0], entry[1])
    return out


def _proposals(peer: str, doc: JSON) -> dict[str, Proposal]:
    raw = doc.get("sleep")
    out: dict[str, Proposal] = {}
    for app, entry in raw.items() if isinstance(raw, dict) else ():
        if (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)
                and _number(entry[1])):
            out[str(app)] = Proposal(peer, entry[0], min(float(entry[1]), _MAX_TTL))
    return out


def _number(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
