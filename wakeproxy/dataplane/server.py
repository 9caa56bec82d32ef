"""The data plane's public face: listen, keep the connection set, tick deadlines, drain.

Owns the listening socket, the once-built Context every connection shares, the tick
that enforces client and pool timeouts without a timer per request, and shutdown.
It never handles a request itself (ClientConnection and Exchange do).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from wakeproxy.dataplane.access import AccessRow
from wakeproxy.dataplane.activator import Activator
from wakeproxy.dataplane.client import ClientConnection
from wakeproxy.dataplane.context import Context, Network
from wakeproxy.dataplane.errors import RETRY_AFTER, ShuttingDown
from wakeproxy.dataplane.plain import PlainConnection
from wakeproxy.dataplane.upstream import UpstreamPool
from wakeproxy.model.activity import ActivityLedger
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.model.clock import Clock, SystemClock
from wakeproxy.model.demand import WakeDemand
from wakeproxy.model.limits import Limits
from wakeproxy.model.routes import Routes
from wakeproxy.model.stats import RequestStats


class DataPlane:
    def __init__(
        self,
        *,
        routes: Routes,
        board: ReadinessBoard,
        ledger: ActivityLedger,
        demand: WakeDemand,
        stats: RequestStats,
        access_log: Callable[[AccessRow], None] | None,
        limits: Limits,
        trusted_proxies: tuple[Network, ...] = (),
        clock: Clock = SystemClock(),  # noqa: B008 - stateless, shared on purpose
    ) -> None:
        self._routes = routes
        self._board = board
        self._ledger = ledger
        self._demand = demand
        self._stats = stats
        self._access_log = access_log
        self._limits = limits
        self._trusted = trusted_proxies
        self._clock = clock
        self._ctx: Context | None = None
        self._server: asyncio.Server | None = None
        self._tick: asyncio.Task[None] | None = None
        # Deadlines are checked this often: a fraction of the shortest timeout. The pool's
        # idle timeout is left out: a pooled connection's age is checked when it is taken,
        # so its sweep only frees sockets and may come late.
        shortest = min(
            limits.client_head_timeout,
            limits.client_idle_timeout,
            limits.response_header_timeout,
            limits.client_body_timeout,
            limits.client_send_timeout,
            limits.tunnel_idle_timeout,
        )
        self._tick_interval = min(max(shortest / 8, 0.005), 0.5)

    @property
    def open_connections(self) -> int:
        return len(self._ctx.connections) if self._ctx is not None else 0

    @property
    def held_requests(self) -> int:
        return self._ctx.activator.held if self._ctx is not None else 0

    async def start(self, host: str, port: int) -> tuple[str, int]:
        """Listen on host:port (0 picks a free port); returns the bound address."""
        loop = asyncio.get_running_loop()
        limits = self._limits
        pool = UpstreamPool(
            loop=loop,
            max_idle=limits.upstream_pool_size,
            idle_timeout=limits.upstream_idle_timeout,
            connect_timeout=limits.connect_timeout,
            connection=PlainConnection,
        )
        activator = Activator(
            board=self._board,
            demand=self._demand,
            stats=self._stats,
            clock=self._clock,
            retry_after=RETRY_AFTER,
        )
        ctx = self._ctx = Context(
            loop=loop,
            routes=self._routes,
            board=self._board,
            ledger=self._ledger,
            demand=self._demand,
            stats=self._stats,
            access_log=self._access_log,
            limits=limits,
            trusted_proxies=self._trusted,
            clock=self._clock,
            pool=pool,
            activator=activator,
        )
        self._server = await loop.create_server(
            lambda: ClientConnection(ctx), host, port, backlog=2048, reuse_address=True
        )
        self._tick = loop.create_task(self._ticker(ctx), name="wakeproxy-dataplane-tick")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    def app_removed(self, app: str) -> None:
        """`app` left the board and the routes: drop its activity record and request stats.

        The data plane is the one writer of both, so the records it keeps per app are
        dropped here, where it is told of the removal, never by another part. Requests
        still in flight for the app finish on the records their route holds (orphans
        from now on, read by nobody), so none re-creates the app's series; the ledger's
        `changes` empties the route cache, so a later app of that name starts from zero.
        """
        self._stats.forget(app)
        self._ledger.forget(app)

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def drain(self, grace: float) -> None:
        """Finish in-flight requests for up to `grace` seconds, then close everything.

        Idle keep-alive connections close at once; busy ones close after their current
        response. At the end, requests no app has seen yet (held, or waiting for a
        connection) get 503 "shutting down"; responses still running are cut so that the
        client can tell (short of their length, no last chunk, or a reset).
        """
        ctx = self._ctx
        if ctx is None:
            return
        self.stop_accepting()
        ctx.draining = True
        for conn in list(ctx.connections):
            if not conn.busy:
                conn.close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # Polling a handful of times per second costs nothing during a shutdown and keeps
        # the hot path free of "am I the last one" bookkeeping.
        while loop.time() < deadline and any(c.busy for c in ctx.connections):  # noqa: ASYNC110
            await asyncio.sleep(min(0.02, max(deadline - loop.time(), 0)))
        ctx.activator.fail_all(
            ShuttingDown("the proxy is shutting down; try again", retry_after=RETRY_AFTER)
        )
        for conn in list(ctx.connections):
            conn.shutdown()
        ctx.pool.close()
        if self._tick is not None:
            self._tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick
            self._tick = None
        # Let the transports run their connection_lost callbacks.
        for _ in range(3):
            await asyncio.sleep(0)

    async def _ticker(self, ctx: Context) -> None:
        loop = ctx.loop
        interval = self._tick_interval
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for conn in list(ctx.connections):
                try:
                    if conn.deadline_kind and conn.deadline <= now:
                        conn.deadline_passed()
                    if conn.writing_paused:
                        conn.send_checked(now)
                except Exception:
                    ctx.log.exception("deadline handling failed")
                    conn.close()
            ctx.pool.sweep(now)
