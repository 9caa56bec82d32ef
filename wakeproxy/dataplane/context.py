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
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes, normalize_host
from wakeproxy.model.stats import RequestStats

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Entries kept in each lookup cache before it starts afresh (bounds memory under junk).
_CACHE_SIZE = 4096
# The route cache's entry for a Host that is not a valid host at all.
_INVALID: tuple[str, str | None] = ("", None)


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
        # The dicts behind the board, the ledger and the stats, read with one C call per
        # request (their owners' methods cost a Python call each); records are added
        # only through the owners (`ledger.get`, `stats.app`).
        self.states = board.states
        self.activity = ledger.records
        self.app_stats = stats.apps
        self.log = structlog.get_logger("wakeproxy.dataplane")
        self._trusted = trusted_proxies
        self._trust_cache: dict[str, bool] = {}
        self._route_table = routes.table
        self._route_cache: dict[bytes, tuple[str, str | None]] = {}

    def route(self, raw_host: bytes) -> tuple[str, str | None]:
        """`Host` bytes → (normalized host, app or None), cached per route table.

        Raises BadRequest for a value that is not a host (and port) at all.
        """
        table = self.routes.table
        if table is not self._route_table:
            self._route_table = table  # swapped whole by the control plane: start afresh
            self._route_cache.clear()
        hit = self._route_cache.get(raw_host)
        if hit is None:
            if raw_host and not valid_host(raw_host):
                hit = _INVALID
            else:
                host = normalize_host(raw_host.decode("latin-1"))
                hit = (host, table.resolve(host))
            if len(self._route_cache) >= _CACHE_SIZE:
                self._route_cache.clear()
            self._route_cache[raw_host] = hit
        if hit is _INVALID:
            raise BadRequest("the Host header is not a valid host name")
        return hit

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
