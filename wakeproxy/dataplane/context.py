"""What every connection of one running DataPlane shares, built once when it starts.

Config values are copied here once so the hot path reads plain attributes and never
re-reads settings. It holds references only; it never does I/O.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable

import structlog

from wakeproxy.dataplane.access import AccessRow
from wakeproxy.dataplane.activator import Activator
from wakeproxy.dataplane.errors import BadRequest
from wakeproxy.dataplane.headers import RequestIds, valid_host
from wakeproxy.dataplane.ports import Client
from wakeproxy.dataplane.upstream import UpstreamPool
from wakeproxy.model.activity import ActivityLedger, AppActivity
from wakeproxy.model.board import AppState, ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, normalize_host
from wakeproxy.model.stats import AppRequestStats, RequestStats

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Entries kept in each lookup cache before it starts afresh (bounds memory under junk).
_CACHE_SIZE = 4096

# What a `Host` resolves to, everything a request's bookkeeping needs in one lookup:
# (normalized host, app or "" when no app serves it, the app's state or None when the
# board has none, its activity record or None without a state, its request stats, under
# app "" for no app).
Route = tuple[str, str, AppState | None, AppActivity | None, AppRequestStats]
# The route cache's entry for a Host that is not a valid host at all.
_INVALID: Route = ("", "", None, None, AppRequestStats())


class Context:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        routes: Routes,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        demand: WakeDemand,
        stats: RequestStats,
        access_log: Callable[[AccessRow], None] | None,
        limits: Limits,
        trusted_proxies: tuple[Network, ...],
        clock: Clock,
        pool: UpstreamPool,
        activator: Activator,
    ) -> None:
        self.loop = loop
        self.routes = routes
        self.board = board
        self.ledger = ledger
        self.demand = demand
        self.stats = stats
        self.access_log = access_log
        self.clock = clock
        self.monotonic = clock.monotonic
        self.pool = pool
        self.activator = activator
        self.max_head_bytes = limits.max_head_bytes
        self.max_headers = limits.max_headers
        self.max_connections = limits.max_connections
        self.head_timeout = limits.client_head_timeout
        self.idle_timeout = limits.client_idle_timeout
        self.response_header_timeout = limits.response_header_timeout
        self.connect_timeout = limits.connect_timeout
        self.body_timeout = limits.client_body_timeout
        self.send_timeout = limits.client_send_timeout
        self.tunnel_idle_timeout = limits.tunnel_idle_timeout
        self.connections: set[Client] = set()
        self.draining = False
        self.ids = RequestIds()
        self.log = structlog.get_logger("wakeproxy.dataplane")
        self._trusted = trusted_proxies
        self._trust_cache: dict[str, bool] = {}
        # Host bytes -> Route, or _INVALID for a value that is not a host at all. Emptied
        # whenever what an entry holds may have changed: a new route table, an app's
        # state added or removed, an activity record dropped. (Fields of a state, like
        # its endpoints, are read live from it.)
        self._route_cache: dict[bytes, Route] = {}
        for changes in (routes.changes, board.changes, ledger.changes):
            changes.watch(self._forget_routes)

    def route(self, raw_host: bytes) -> Route:
        """`Host` bytes -> what it resolves to (`Route`), cached.

        Raises BadRequest for a value that is not a host (and port) at all.
        """
        hit = self._route_cache.get(raw_host)
        if hit is None:
            hit = self._resolve(raw_host)
        if hit is _INVALID:
            raise BadRequest("the Host header is not a valid host name")
        return hit

    def _resolve(self, raw_host: bytes) -> Route:
        hit = _INVALID
        if not raw_host or valid_host(raw_host):
            host = normalize_host(raw_host.decode("latin-1"))
            app = self.routes.table.resolve(host) or ""
            state = self.board.states.get(app) if app else None
            # Records are made through their owners, once per entry.
            activity = self.ledger.get(app) if state is not None else None
            hit = (host, app, state, activity, self.stats.app(app))
        cache = self._route_cache
        if len(cache) >= _CACHE_SIZE:
            cache.clear()
        cache[raw_host] = hit
        return hit

    def unrouted(self, host: str) -> Route:
        """The books of a request whose Host named no valid host (or that had no head):
        no app, its stats under app ""."""
        return (host, "", None, None, self.stats.app(""))

    def _forget_routes(self) -> None:
        self._route_cache.clear()

    def is_trusted(self, ip: str) -> bool:
        """Whether a peer address is a proxy whose forwarded headers we believe."""
        if not self._trusted:
            return False
        known = self._trust_cache.get(ip)
        if known is not None:
            return known
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            trusted = False
        else:
            trusted = any(addr in net for net in self._trusted)
        if len(self._trust_cache) >= _CACHE_SIZE:
            self._trust_cache.clear()
        self._trust_cache[ip] = trusted
        return trusted
