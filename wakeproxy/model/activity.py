"""The activity ledger: when each app was last used and what it is serving now.

One writer: the data plane (`begin`/`end` around every forwarded or held request — on
its hot path the same steps written out on the record —
`tunnel_opened`/`tunnel_closed` around WebSocket and other upgraded connections, on the
record the request started with; `forget` when the app is removed).
Readers: the sweeper and the admin API. A request counts as in flight from its head
until its response is complete, so a long download or SSE stream keeps its app awake.
"""

from __future__ import annotations

from wakeproxy.model.changes import Changes
from wakeproxy.model.clock import Clock


class AppActivity:
    __slots__ = ("in_flight", "last_access", "requests", "tunnels")

    def __init__(self) -> None:
        self.last_access: float | None = None
        self.in_flight = 0
        self.tunnels = 0
        self.requests = 0

    @property
    def busy(self) -> bool:
        return self.in_flight > 0 or self.tunnels > 0

    def tunnel_opened(self, now: float) -> None:
        self.tunnels += 1
        self.last_access = now

    def tunnel_closed(self, now: float) -> None:
        self.tunnels -= 1
        self.last_access = now


class ActivityLedger:
    def __init__(self, clock: Clock) -> None:
        self._now = clock.monotonic
        self._apps: dict[str, AppActivity] = {}
        # Told when a record is dropped: readers holding it (the data plane writes its
        # per-request steps out on the record) must take the app's new one.
        self.changes = Changes()

    def get(self, app: str) -> AppActivity:
        a = self._apps.get(app)
        if a is None:
            a = self._apps[app] = AppActivity()
        return a

    def peek(self, app: str) -> AppActivity | None:
        """The app's activity if it has any, without creating an entry (for readers)."""
        return self._apps.get(app)

    def begin(self, app: str, quiet: bool = False) -> AppActivity:
        """A request starts. A `quiet` one (an ignored path, e.g. a health check) is in
        flight — so no sweep cuts it off — but is not use: it never keeps the app awake."""
        a = self._apps.get(app) or self.get(app)
        a.in_flight += 1
        if not quiet:
            a.requests += 1
            a.last_access = self._now()
        return a

    def end(self, app: str, quiet: bool = False) -> None:
        a = self._apps.get(app) or self.get(app)
        a.in_flight -= 1
        if not quiet:
            a.last_access = self._now()

    def tunnel_opened(self, app: str) -> None:
        self.get(app).tunnel_opened(self._now())

    def tunnel_closed(self, app: str) -> None:
        self.get(app).tunnel_closed(self._now())

    def forget(self, app: str) -> None:
        """`app` was removed: its record goes. Whoever still holds it (a request or
        tunnel in flight) ends on it, unseen; a new app of that name starts afresh."""
        if self._apps.pop(app, None) is not None:
            self.changes.changed()
