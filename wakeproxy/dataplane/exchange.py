"""One request/response exchange: route, count, hold or forward, answer, log.

Owns a request from its complete head to its logged end: the activity it counts, the
hold, the upstream connection it borrows, the request body going up (buffered only
until an upstream is attached, kept for one replay only while small), the answers we
make ourselves, and the access record. The response half lives in ResponseRelay. It
never reads the client socket (the ClientConnection feeds it) and never decides how
long a connection lives beyond saying whether it may stay open.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from httptools import HttpResponseParser

from wakeproxy.dataplane.access import AccessRecord
from wakeproxy.dataplane.errors import (
    CLOSES_CONNECTION,
    RETRY_AFTER,
    AppUnavailable,
    BadRequest,
    BodyTimeout,
    HoldQueueFull,
    InternalError,
    ProxyError,
    ShuttingDown,
    UnknownHost,
    UpstreamFailed,
    WakeFailed,
    WakeTimeout,
    render,
    status_of,
)
from wakeproxy.dataplane.headers import (
    CHUNKED,
    CLOSE,
    CRLF,
    IDEMPOTENT,
    NONE,
    RequestHead,
    upstream_head,
)
from wakeproxy.dataplane.relay import (
    COUNTED,
    LAST_CHUNK,
    NOT_COUNTED,
    QUIET,
    RESPONSE_SLOTS,
    ResponseRelay,
)
from wakeproxy.dataplane.waiting_page import render_waiting_page
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.board import AppState

if TYPE_CHECKING:
    from wakeproxy.dataplane.activator import HoldQueue
    from wakeproxy.dataplane.client import ClientConnection
    from wakeproxy.dataplane.upstream import UpstreamConnection

# Request body buffered before an upstream is attached; beyond it the client is paused.
BUFFER_LIMIT = 65536
# Body bytes kept for replaying an idempotent request on a fresh connection.
REPLAY_LIMIT = 65536
# Times an idempotent request is sent again after its connection died before any answer:
# enough for a pooled connection the app closed and a dying process's listener, too few
# for a request that crashes its app to crash it over and over.
MAX_REPLAYS = 2
# After a refused connect, the first wait for the app's endpoints to change before trying
# again; it doubles up to the cap. Waiting ends early when the readiness board changes.
RETRY_FIRST = 0.01
RETRY_CAP = 0.25


class Exchange(ResponseRelay):
    __slots__ = (
        "app",
        "bytes_in",
        "bytes_out",
        "conn",
        "counted",
        "ctx",
        "endpoint",
        "error",
        "finished",
        "head",
        "held",
        "held_since",
        "host",
        "leftover",
        "method",
        "page",
        "path",
        "pending",
        "pending_size",
        "queue",
        "refusals",
        "refused_at",
        "replay",
        "replay_size",
        "request_done",
        "request_id",
        "replays",
        "retry_task",
        "running",
        "sent",
        "started",
        "ticket",
        "up_head",
        "upstream",
        *RESPONSE_SLOTS,
    )

    def __init__(
        self,
        conn: ClientConnection,
        head: RequestHead | None,
        error: ProxyError | None = None,
        *,
        method: bytes = b"",
        target: bytes = b"",
        head_size: int = 0,
    ) -> None:
        super().__init__()
        ctx = conn.ctx
        self.conn = conn
        self.ctx = ctx
        self.head = head
        self.error = error
        self.started = ctx.clock.monotonic()
        self.app = ""
        self.host = ""
        self.method = method
        self.path = target
        self.counted = NOT_COUNTED
        self.bytes_in = head_size
        self.bytes_out = 0
        self.running = False
        self.finished = False
        self.request_done = False
        self.upstream: UpstreamConnection | None = None
        self.endpoint: Endpoint | None = None
        self.pending: list[bytes] | None = None
        self.pending_size = 0
        self.up_head = b""
        self.replay: list[bytes] | None = None
        self.replay_size = 0
        self.replays = 0  # times sent again after a connection died before any answer
        self.sent = False  # some of the request went to an upstream
        self.refused_at: float | None = None
        self.refusals = 0
        self.retry_task: asyncio.Task[None] | None = None
        self.held_since: float | None = None
        self.held: float | None = None
        self.page = False  # a browser's: the waiting page if the app is slow to wake
        self.queue: HoldQueue | None = None
        self.ticket: HoldQueue | None = None
        self.leftover: bytes | None = None
        if head is None:
            self.request_id = ctx.ids.next()
            return
        self.method = head.method
        self.path = head.target
        rid = head.request_id
        self.request_id = rid if rid and conn.trusted else ctx.ids.next()
        if error is None:
            self._route(head)

    def _route(self, head: RequestHead) -> None:
        ctx = self.ctx
        try:
            self.host, app = ctx.route(head.host)
        except BadRequest as e:
            self.error = e
            return
        if app is None:
            self.error = UnknownHost(f"no app serves host {self.host!r}")
            return
        self.app = app
        state = ctx.board.get(app)
        if state is None:
            return
        ignored = state.policy.ignored_paths
        quiet = bool(ignored) and head.target.split(b"?", 1)[0].decode("latin-1") in ignored
        ctx.ledger.begin(app, quiet)
        self.counted = QUIET if quiet else COUNTED

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Called once, when this exchange is the connection's current one."""
        self.running = True
        if self.error is not None:
            self.respond(self.error)
            return
        self._dispatch(fresh=False)

    def _dispatch(self, *, fresh: bool) -> None:
        """Forward to a ready endpoint of the app, or hold until it has one.

        `fresh` asks for a new upstream connection instead of a pooled one.
        """
        state = self.ctx.board.get(self.app)
        if state is None:
            self.respond(AppUnavailable(f"app {self.app!r} is not available", app=self.app))
            return
        endpoint = state.pick()
        if endpoint is not None:
            self.forward(endpoint, fresh=fresh)
            return
        head = self.head
        assert head is not None
        ctx = self.ctx
        page_after: float | None = None
        if state.policy.waiting_page and head.method == b"GET" and head.accept_html:
            # A browser: held a short while first, so that an app which wakes quickly is
            # shown at once; then the page that reloads itself until the app answers.
            page_after = state.policy.waiting_page_after
            if page_after <= 0:
                ctx.demand.request(self.app)
                self._waiting_page(state)
                return
            self.page = True
        queue = ctx.activator.hold(self, state, page_after)
        if queue is None and self.page:
            self._waiting_page(state)
            return
        if queue is None:
            self.respond(
                HoldQueueFull(
                    f"app {self.app!r} is waking and has too many requests waiting",
                    app=self.app,
                    retry_after=RETRY_AFTER,
                )
            )
            return
        self.queue = queue
        self.held_since = ctx.clock.monotonic()
        if not self.request_done:
            # Leave the body in the kernel while we wait: held uploads cost no memory.
            self.conn.pause(self.conn.HELD)

    def released(self, endpoint: Endpoint, queue: HoldQueue, held: float) -> None:
        self.held = held if self.held is None else self.held + held
        self.queue = None
        self.ticket = queue
        try:
            self.conn.resume(self.conn.HELD)
            self.forward(endpoint)
        except Exception:
            self._crashed()

    def hold_failed(self, error: ProxyError, held: float) -> None:
        self.held = held if self.held is None else self.held + held
        self.queue = None
        try:
            state = self.ctx.board.get(self.app)
            if self.page and isinstance(error, WakeTimeout | WakeFailed) and state is not None:
                self._waiting_page(state)  # still waking, or failed and woken again
            else:
                self.respond(error)
        except Exception:
            self._crashed()

    def _waiting_page(self, state: AppState) -> None:
        head = self.head
        assert head is not None
        failure = state.failure.reason if state.failure is not None else None
        keep = head.keep_alive and self.request_done and not self.ctx.draining
        data = render_waiting_page(self.app, failure, close=not keep, request_id=self.request_id)
        self._answer(data, 503, "waking up: sent the waiting page", keep)

    def forward(self, endpoint: Endpoint, *, fresh: bool = False) -> None:
        self.endpoint = endpoint
        head = self.head
        assert head is not None
        conn = self.conn
        self.up_head = upstream_head(head, conn.peer_bytes, conn.trusted, self.request_id)
        up = None if fresh else self.ctx.pool.acquire(endpoint)
        if up is not None:
            self._attach(up)
        else:
            self.ctx.pool.connect(endpoint, self)

    def connected(self, up: UpstreamConnection) -> None:
        if self.finished:
            self.ctx.pool.release(up)  # nothing was sent on it
            return
        try:
            self._attach(up)
        except Exception:
            self._crashed()

    def connect_failed(self, reason: str, *, nobody_there: bool = False) -> None:
        """No connection. `nobody_there`: refused or unreachable, so nothing was sent and
        the app may have just exited: wait for its endpoints to change (a wake, if it is
        asleep now) for up to `connect_timeout` before answering 502."""
        if self.finished:
            return
        try:
            if nobody_there and self._retry_later():
                return
            self.respond(UpstreamFailed(f"app {self.app!r}: {reason}", app=self.app))
        except Exception:
            self._crashed()

    def _retry_later(self) -> bool:
        """Dispatch again after a short wait (cut short by a change of the app's state);
        False when `connect_timeout` has passed since the first retry, or the app is gone."""
        ctx = self.ctx
        now = ctx.loop.time()
        if self.refused_at is None:
            self.refused_at = now
        elif now - self.refused_at >= ctx.connect_timeout:
            return False
        state = ctx.board.get(self.app)
        if state is None:
            return False
        if self.ticket is not None:
            # Back in the waiting room: its release slot goes to the next held request.
            self.ticket.step()
            self.ticket = None
        self.conn.cancel_response_wait()
        delay = min(RETRY_FIRST * (1 << min(self.refusals, 8)), RETRY_CAP)
        self.refusals += 1
        self.retry_task = ctx.loop.create_task(
            self._retry(state, delay), name=f"wakeproxy-retry-{self.app}"
        )
        return True

    async def _retry(self, state: AppState, delay: float) -> None:
        changed = state.changed()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()
        self.retry_task = None
        if self.finished:
            return
        try:
            self._dispatch(fresh=True)
        except Exception:
            self._crashed()

    def _attach(self, up: UpstreamConnection) -> None:
        head = self.head
        assert head is not None
        self.upstream = up
        up.exchange = self
        self.sent = True
        self.parser = HttpResponseParser(self)
        # An idempotent request may go again if its connection dies before any answer
        # (RFC 9110 §9.2.2): a pooled one the app closed as we reused it, or a new one
        # that a dying process's listener accepted but never served.
        replayable = self.replays < MAX_REPLAYS and head.method in IDEMPOTENT
        pending = self.pending
        if pending:
            self.pending = None
            self.pending_size = 0
            up.transport.writelines([self.up_head, *pending])
            if replayable and self.request_done:
                self.replay = pending
            self.conn.resume(self.conn.BUFFERED)
        else:
            up.transport.write(self.up_head)
            if replayable and (head.body == NONE or not self.request_done):
                self.replay = []
        if self.request_done:
            self.conn.await_response()
        if self.conn.writing_paused:
            up.pause_reading()

    # -- request body, fed by the client connection -----------------------------------

    def request_body(self, chunk: bytes) -> None:
        n = len(chunk)
        self.bytes_in += n
        head = self.head
        assert head is not None
        parts = [b"%x\r\n" % n, chunk, CRLF] if head.body == CHUNKED else [chunk]
        self._send_up(parts, n)

    def request_complete(self) -> None:
        self.request_done = True
        head = self.head
        if head is not None and head.body == CHUNKED:
            self._send_up([LAST_CHUNK], 5)
        if self.upstream is not None and not self.resp_started:
            self.conn.await_response()

    def request_failed(self, error: ProxyError) -> None:
        """The client's request turned out malformed after its head (e.g. bad chunking)."""
        if self.running:
            self.respond(error)
        else:
            self.error = error

    def _send_up(self, parts: list[bytes], n: int) -> None:
        up = self.upstream
        if up is not None:
            up.transport.writelines(parts)
            replay = self.replay
            if replay is not None:
                self.replay_size += n
                if self.replay_size > REPLAY_LIMIT:
                    self.replay = None
                else:
                    replay.extend(parts)
        elif not self.finished:
            pending = self.pending
            if pending is None:
                pending = self.pending = []
            pending.extend(parts)
            self.pending_size += n
            if self.pending_size > BUFFER_LIMIT:
                self.conn.pause(self.conn.BUFFERED)

    def body_timeout(self) -> None:
        if not self.finished and not self.request_done:
            t = self.ctx.body_timeout
            self.respond(BodyTimeout(f"the request body made no progress for {t:g}s",
                                     app=self.app))

    def shutdown(self) -> None:
        """The drain's grace is over: a request no app has seen gets 503, others are cut."""
        if self.finished:
            return
        if not self.sent and not self.resp_started:
            self.respond(ShuttingDown("the proxy is shutting down; try again",
                                      app=self.app, retry_after=RETRY_AFTER))
        elif self.resp_started and self.framing == CLOSE:
            # Its end would look like a complete body: reset instead, so the client knows.
            self.conn.close(cut=True)

    def upstream_full(self, full: bool) -> None:
        if full:
            self.conn.pause(self.conn.BACKPRESSURE)
        else:
            self.conn.resume(self.conn.BACKPRESSURE)

    # -- our own answers and the end ----------------------------------------------------

    def respond(self, error: ProxyError) -> None:
        """Answer with `error` instead of the app (or close, if a head already went out)."""
        if self.finished:
            return
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.close()
        if self.queue is not None:
            self.queue.cancel(self)
            self.queue = None
        status = status_of(error)
        if self.resp_started:
            self.conn.close()
            self._finish(self.status or status, error.message)
            return
        head = self.head
        keep = (
            head is not None
            and head.keep_alive
            and self.request_done
            and type(error) not in CLOSES_CONNECTION
            and not self.ctx.draining
        )
        head_only = head is not None and head.method == b"HEAD"
        data = render(error, close=not keep, request_id=self.request_id, head_only=head_only)
        self._answer(data, status, error.message, keep)

    def _answer(self, data: bytes, status: int, reason: str, keep: bool) -> None:
        self.resp_started = True
        self.bytes_out += len(data)
        self.conn.send(data)
        self._finish(status, reason)
        self.conn.exchange_done(self, keep)

    def client_gone(self) -> None:
        if self.finished:
            return
        if self.queue is not None:
            self.held = self.queue.cancel(self)
            self.queue = None
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.close()  # the request may be half sent: this connection is done
        self._finish(self.status if self.resp_started else 499, "the client went away")

    def internal_error(self) -> None:
        self.respond(InternalError(f"app {self.app!r}: internal proxy error", app=self.app))

    def _crashed(self, exc: BaseException | None = None) -> None:
        """An unexpected exception: log it, answer 502 if nothing went out, close.

        `exc` when it is not the exception being handled (one a parser callback raised).
        """
        self.ctx.log.error("request handling failed", app=self.app, exc_info=exc or True)
        try:
            up = self.upstream
            if up is not None:
                self.upstream = None
                up.close()
            if self.resp_started or self.finished:
                self.conn.close()
                self._finish(self.status, "internal proxy error")
            else:
                self.internal_error()
        except Exception:
            self.ctx.log.exception("request cleanup failed", app=self.app)
            self.conn.close()

    def _finish(self, status: int, reason: str | None) -> None:
        if self.finished:
            return
        self.finished = True
        # The parser holds our bound methods: drop it so refcounting, not the cyclic
        # garbage collector, frees the exchange.
        self.parser = None
        if self.retry_task is not None:
            self.retry_task.cancel()
            self.retry_task = None
        ctx = self.ctx
        duration = ctx.clock.monotonic() - self.started
        if self.counted:
            ctx.ledger.end(self.app, self.counted == QUIET)
            self.counted = NOT_COUNTED
        if self.ticket is not None:
            self.ticket.step()
            self.ticket = None
        ctx.stats.record(self.app, status, duration)
        ep = self.endpoint
        record = AccessRecord(  # positional: the hot path's one allocation of it
            self.app,
            self.host,
            self.method.decode("latin-1"),
            self.path.decode("latin-1"),
            status,
            duration,
            self.held,
            self.request_id.decode("latin-1"),
            self.conn.peer,
            f"{ep.host}:{ep.port}" if ep is not None else None,
            self.bytes_in,
            self.bytes_out,
            reason,
        )
        try:
            ctx.access_log(record)
        except Exception:
            ctx.log.exception("access log sink failed")
