"""Connections to app endpoints and the keep-alive pool that reuses them.

Owns upstream sockets: connecting (with a timeout), the idle pool per endpoint (most
recently used first, bounded, swept after `upstream_idle_timeout`), and handing each
connection's events to the exchange or tunnel using it. It never parses or rewrites
HTTP itself (the exchange does) and never decides which endpoint to use.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Protocol, cast

import structlog

from wakeproxy.dataplane.ports import TunnelEnd, UpstreamUser
from wakeproxy.model.apps import Endpoint

log = structlog.get_logger("wakeproxy.dataplane")

# Connect errors that mean nothing listens at the endpoint (so nothing was sent): the app
# exited or moved, and the request may wait for its next endpoint.
_NOBODY_THERE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH})
# A connection idle longer than this is peeked at before reuse (a system call or two); one
# reused within it, as under load, is taken as it is.
_PEEK_AFTER = 0.2


class ConnectWaiter(Protocol):
    def connected(self, conn: UpstreamConnection) -> None: ...

    def connect_failed(self, reason: str, *, nobody_there: bool = False) -> None: ...


class UpstreamConnection(asyncio.Protocol):
    __slots__ = (
        "address",
        "closing",
        "endpoint",
        "exchange",
        "idle_since",
        "key",
        "pool",
        "reading_paused",
        "transport",
        "tunnel",
    )

    def __init__(self, pool: UpstreamPool, endpoint: Endpoint) -> None:
        self.pool = pool
        self.endpoint = endpoint
        self.address = f"{endpoint.host}:{endpoint.port}"
        self.key = (endpoint.host, endpoint.port)  # the pool's: hashed in C, unlike Endpoint
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self.exchange: UpstreamUser | None = None
        self.tunnel: TunnelEnd | None = None
        self.idle_since = 0.0
        self.closing = False
        self.reading_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        ex = self.exchange
        if ex is not None:
            ex.upstream_data(data)
        elif self.tunnel is not None:
            self.tunnel.from_upstream(data)
        else:
            # Bytes nobody asked for on an idle connection: its framing is unknown.
            self.close()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost does the rest

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        ex = self.exchange
        if ex is not None:
            self.exchange = None
            ex.upstream_lost(self, exc)
        elif self.tunnel is not None:
            self.tunnel.upstream_closed()
        else:
            self.pool.discard(self)

    def pause_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_full(True)
        elif self.tunnel is not None:
            self.tunnel.upstream_full(True)

    def resume_writing(self) -> None:
        if self.exchange is not None:
            self.exchange.upstream_full(False)
        elif self.tunnel is not None:
            self.tunnel.upstream_full(False)

    def pause_reading(self) -> None:
        if not self.reading_paused and not self.closing:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closing:
            self.reading_paused = False
            self.transport.resume_reading()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.exchange = None
            self.transport.close()


class UpstreamPool:
    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        max_idle: int,
        idle_timeout: float,
        connect_timeout: float,
        connection: type[UpstreamConnection] | None = None,
    ) -> None:
        self._loop = loop
        # What new connections are made as (the plain path's, when the server builds it).
        self._connection = connection or UpstreamConnection
        self._max_idle = max_idle
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._idle: dict[tuple[str, int], list[UpstreamConnection]] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def idle_connections(self) -> int:
        return sum(len(v) for v in self._idle.values())

    def acquire(self, endpoint: Endpoint) -> UpstreamConnection | None:
        """A live idle connection to `endpoint`, the most recently used first."""
        idle = self._idle.get((endpoint.host, endpoint.port))
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            # The app may have closed it a moment ago (EOF seen, connection_lost not yet run).
            if conn.closing or conn.transport.is_closing():
                continue
            age = now - conn.idle_since
            if age > self._idle_timeout:
                conn.close()  # due for the sweep, which has not run yet (a busy loop)
                continue
            if age > _PEEK_AFTER and not _still_open(conn.transport):
                conn.close()  # its close is in our socket, not yet seen by the loop
                continue
            return conn
        return None

    def release(self, conn: UpstreamConnection) -> None:
        """Back to the pool after a complete exchange (or unused after connecting)."""
        conn.exchange = None
        if self._closed or conn.closing:
            conn.close()
            return
        idle = self._idle.get(conn.key)
        if idle is None:
            idle = self._idle[conn.key] = []
        if len(idle) >= self._max_idle:
            conn.close()
            return
        if conn.reading_paused:
            # An idle connection must read, or we would never notice the app closing it.
            conn.resume_reading()
        conn.idle_since = self._loop.time()
        idle.append(conn)

    def discard(self, conn: UpstreamConnection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    def new_connection(self, endpoint: Endpoint) -> UpstreamConnection:
        """A connection object for `endpoint`, not yet connected (the protocol of one)."""
        return self._connection(self, endpoint)

    def connect(self, endpoint: Endpoint, waiter: ConnectWaiter) -> None:
        task = self._loop.create_task(
            self._connect(endpoint, waiter), name=f"wakeproxy-connect-{endpoint}"
        )
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, endpoint: Endpoint, waiter: ConnectWaiter) -> None:
        loop = self._loop
        try:
            try:
                _, conn = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: self.new_connection(endpoint), endpoint.host, endpoint.port
                    ),
                    self._connect_timeout,
                )
            except TimeoutError:
                waiter.connect_failed(
                    f"no connection to {endpoint} within {self._connect_timeout:g}s"
                )
                return
            except ConnectionRefusedError:
                waiter.connect_failed(f"connection refused at {endpoint}", nobody_there=True)
                return
            except OSError as e:
                waiter.connect_failed(f"cannot connect to {endpoint}: {e.strerror or e}",
                                      nobody_there=e.errno in _NOBODY_THERE)
                return
            if self._closed:
                conn.close()
                waiter.connect_failed("the proxy is shutting down")
                return
            if _connected_to_itself(conn.transport):
                # Connecting to a local port nobody listens on can pick that very port as
                # the source: TCP then connects the socket to itself. Nobody is there.
                conn.close()
                waiter.connect_failed(f"connection refused at {endpoint}", nobody_there=True)
                return
            waiter.connected(conn)
        except asyncio.CancelledError:
            waiter.connect_failed("the proxy is shutting down")
            raise
        except Exception:
            log.exception("upstream connect handling failed", endpoint=str(endpoint))

    def sweep(self, now: float) -> None:
        """Close connections idle for longer than the idle timeout (oldest are first), and
        forget endpoints left with none: each wake may bring new pod addresses (or, locally,
        new ports), and the pool must not keep, nor sweep on every tick, one entry for
        every endpoint it ever had."""
        limit = now - self._idle_timeout
        emptied = []
        for key, idle in self._idle.items():
            while idle and idle[0].idle_since < limit:
                idle.pop(0).close()
            if not idle:
                emptied.append(key)
        for key in emptied:
            del self._idle[key]

    @property
    def endpoints(self) -> int:
        """How many endpoints the pool keeps connections for (some may have none until
        the next sweep)."""
        return len(self._idle)

    def close(self) -> None:
        self._closed = True
        for idle in self._idle.values():
            for conn in idle:
                conn.close()
            idle.clear()
        for task in list(self._connecting):
            task.cancel()


def _still_open(transport: asyncio.Transport) -> bool:
    """Whether the app has neither closed this idle connection nor sent on it: a peek at
    the socket, for when the loop may not have read its close yet."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    peek = socket.socket(fileno=sock.fileno())
    try:
        peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True  # nothing to read: open and quiet, as an idle connection should be
    except OSError:
        return False
    finally:
        peek.detach()
    return False  # its close, or bytes nobody asked for


def _connected_to_itself(transport: asyncio.Transport) -> bool:
    sockname = transport.get_extra_info("sockname")
    return sockname is not None and sockname == transport.get_extra_info("peername")
