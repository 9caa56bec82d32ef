"""What the other wakeproxy replicas report about their apps' activity.

One writer: the platform's activity sync (only a platform with peers has one), which
calls `update` with each peer record it reads, already converted to this replica's
monotonic clock. One reader: the sweeper, which merges it with the local ledger — an app
is busy if any fresh peer has a request or tunnel open, and its last access is the latest
over every replica. A peer whose record has not been seen to change for `stale_after`
seconds is presumed gone and stops counting, so a crashed replica cannot keep an app
awake forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PeerApp:
    """One app as one peer saw it: last access (our monotonic clock) and open requests."""

    last_access: float | None
    in_flight: int


@dataclass(frozen=True, slots=True)
class _Record:
    seen_at: float
    apps: Mapping[str, PeerApp]


class PeerActivity:
    def __init__(self, *, stale_after: float) -> None:
        self.stale_after = stale_after
        self._records: dict[str, _Record] = {}
        # When the writer last finished reading every peer (None: never yet).
        self.synced_at: float | None = None

    # -- the writer's API ------------------------------------------------------------

    def update(self, peer: str, apps: Mapping[str, PeerApp], now: float) -> None:
        """A new version of `peer`'s record was read at `now` (monotonic)."""
        self._records[peer] = _Record(now, dict(apps))

    def forget(self, peer: str) -> None:
        self._records.pop(peer, None)

    def synced(self, now: float) -> None:
        """Every peer record there is has been read, as of `now`."""
        self.synced_at = now

    # -- readers ---------------------------------------------------------------------

    def fresh_peers(self, now: float) -> list[str]:
        return sorted(p for p, r in self._records.items() if now - r.seen_at < self.stale_after)

    def seen_at(self, peer: str) -> float | None:
        record = self._records.get(peer)
        return record.seen_at if record is not None else None

    def merged(self, app: str, now: float) -> PeerApp | None:
        """`app` over every fresh peer: latest access, total in flight; None if none saw it."""
        last: float | None = None
        in_flight = 0
        found = False
        for record in self._records.values():
            if now - record.seen_at >= self.stale_after:
                continue
            seen = record.apps.get(app)
            if seen is None:
                continue
            found = True
            in_flight += seen.in_flight
            if seen.last_access is not None and (last is None or seen.last_access > last):
                last = seen.last_access
        return PeerApp(last, in_flight) if found else None
