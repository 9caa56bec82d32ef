"""One request/response exchange: route, count, hold or forward, relay the answer, log.

Owns a request from its complete head to its logged end: the activity it counts, the
hold, the upstream connection it borrows, the request body going up (buffered only
until an upstream is attached, kept for one replay only while small), the upstream's
answer (its own httptools response parser: interim heads, the rewritten final head, the
body streamed with its framing kept, one write per upstream read, HEAD and bodiless
statuses), the pooled connection's return or the one retry a dead one allows, the
switch to a tunnel on 101, the answers we make ourselves, and the access record. It
never reads the client socket (the ClientConnection feeds it) and never decides how long
a connection lives beyond saying whether it may stay open.

The commonest request (no body, an awake app, a pooled connection) does not need an
exchange: `plain.py` relays it, and makes it one (`adopted`) only when its answer or its
fate needs more. Every other request starts as an exchange: `ClientConnection` →
`Exchange.__init__` → `start` → `forward` → `_attach`, then `upstream_data` (parse, one
write, `_complete`) → `_finish`; holds, retries, replays, our own answers and upgrades
branch off that.
"""

from __future__ import annotations

import asyncio
import contextlib

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpResponseParser,
)

from wakeproxy.dataplane.accounting import (
    NOT_COUNTED,
    begin_counting,
    end_counting,
    settle,
)
from wakeproxy.dataplane.activator import HoldQueue
from wakeproxy.dataplane.answers import response_head
from wakeproxy.dataplane.context import Context, Route
from wakeproxy.dataplane.errors import (
    CLOSES_CONNECTION,
    AppUnavailable,
    BadRequest,
    BodyTimeout,
    HoldQueueFull,
    InternalError,
    ProxyError,
    ResponseTimeout,
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
from wakeproxy.dataplane.ports import RESPONSE, Client, Upstream
from wakeproxy.dataplane.tunnel import Tunnel
from wakeproxy.dataplane.upstream import UpstreamConnection
from wakeproxy.dataplane.waiting_page import render_waiting_page
from wakeproxy.model.activity import AppActivity
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.board import AppState

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
LAST_CHUNK = b"0\r\n\r\n"
# Output parts joined into one buffer before writing when the largest two fit in this.
_JOIN_LIMIT = 16384


# What the plain path hands over when its request becomes an exchange (`Exchange.adopted`):
# route, host, request id, start time, how it is counted, the head sent upstream, whether
# the answer's head went out, its status, the bytes sent to the client, the body framing.
PlainState = tuple[Route, str, bytes, float, int, bytes, bool, int, int, int]


class _Unsolicited(Exception):
    """The upstream sent a second response nobody asked for."""


class Exchange:
    # No __slots__: the rare fields below are class-level defaults that an exchange on
    # the common path never writes, so creating one sets a dozen attributes, not fifty.
    error: ProxyError | None = None
    app = ""
    host = ""
    route: Route | None = None  # what the Host resolved to; None for no valid Host
    counted = NOT_COUNTED
    bytes_out = 0
    running = False
    finished = False
    request_done = False
    upstream: UpstreamConnection | None = None
    endpoint: Endpoint | None = None
    upstream_text: str | None = None  # "host:port" of the endpoint used, for the log
    pending: list[bytes] | None = None  # body waiting for an upstream connection
    pending_size = 0
    up_head = b""
    replay: list[bytes] | None = None  # what to send again if the connection dies unanswered
    replay_size = 0
    replays = 0  # times sent again after a connection died before any answer
    sent = False  # some of the request went to an upstream
    refused_at: float | None = None
    refusals = 0
    retry_task: asyncio.Task[None] | None = None
    held: float | None = None
    page = False  # a browser's: the waiting page if the app is slow to wake
    queue: HoldQueue | None = None  # held in it
    ticket: HoldQueue | None = None  # released from it: step it once answered or failed
    leftover: bytes | None = None  # client bytes after an upgrade request's head
    # The response.
    parser: HttpResponseParser | None = None
    got_response = False
    status = 0
    resp_reason = b""
    resp_headers: list[tuple[bytes, bytes]]
    resp_started = False  # a head went (or is going) to the client
    resp_done = False
    dirty = False  # the upstream sent more than the response: do not pool it
    framing = NONE
    client_keep_alive = False
    up_keep_alive = False

    def __init__(
        self,
        conn: Client,
        ctx: Context,
        head: RequestHead | None,
        error: ProxyError | None = None,
        *,
        method: bytes = b"",
        target: bytes = b"",
        head_size: int = 0,
    ) -> None:
        self.conn = conn
        self.ctx = ctx
        self.head = head
        self.started = ctx.monotonic()
        self.bytes_in = head_size
        self.out: list[bytes] = []
        if head is None:
            self.error = error
            self.method = method
            self.path = target
            self.request_id = ctx.ids.next()
            return
        self.method = head.method
        self.path = head.target
        rid = head.request_id
        self.request_id = rid if rid and conn.trusted else ctx.ids.next()
        if error is not None:
            self.error = error
            return
        try:
            route = self.route = ctx.route(head.host)
        except BadRequest as e:
            self.error = e
            return
        self.host, app, state, activity, _ = route
        if not app:
            self.error = UnknownHost(f"no app serves host {self.host!r}")
            return
        self.app = app
        if state is not None and activity is not None:
            self.counted = begin_counting(self.started, activity, state, head.target)

    @classmethod
    def adopted(
        cls,
        conn: Client,
        ctx: Context,
        head: RequestHead,
        plain: PlainState,
        up: UpstreamConnection,
    ) -> Exchange:
        """The exchange a plain request becomes when its answer needs more than the plain
        path does (see `plain.py`): the request was sent whole on `up`; what of the answer
        was relayed, if any, is in `plain`."""
        ex = cls.__new__(cls)
        ex.conn = conn
        ex.ctx = ctx
        ex.head = head
        ex.out = []
        ex.method = head.method
        ex.path = head.target
        ex.bytes_in = head.size
        (ex.route, ex.host, ex.request_id, ex.started, ex.counted, ex.up_head) = plain[:6]
        ex.app = plain[0][1]
        ex.running = True
        ex.request_done = True
        ex.endpoint = up.endpoint
        ex._use(up, None)
        if plain[6]:  # the answer's head went out: only its end is left to handle
            ex.got_response = ex.resp_started = True
            ex.replay = None
            ex.status, ex.bytes_out, ex.framing = plain[7:10]
        return ex

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Called once, when this exchange is the connection's current one."""
        self.running = True
        if self.error is not None:
            self.respond(self.error)
            return
        state = self.ctx.board.get(self.app)
        endpoint = state.pick() if state is not None else None
        if endpoint is not None:
            self.forward(endpoint)  # the common path: the app is awake
        else:
            self.dispatch(fresh=False)

    def dispatch(self, *, fresh: bool) -> None:
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
        else:
            self._hold(state)

    def forward(self, endpoint: Endpoint, *, fresh: bool = False) -> None:
        self.endpoint = endpoint
        head = self.head
        assert head is not None
        conn = self.conn
        self.up_head = upstream_head(head, conn.peer_bytes, conn.trusted, self.request_id)
        pool = self.ctx.pool
        up = None if fresh else pool.acquire(endpoint)
        if up is not None:
            self._attach(up)
        else:
            pool.connect(endpoint, self)

    def _use(self, up: UpstreamConnection, pending: list[bytes] | None) -> None:
        """`up` is the connection this request goes (or went) on, with the body parts
        `pending` until now; its answer comes back through a parser of our own."""
        self.upstream = up
        self.upstream_text = up.address
        up.exchange = self
        self.sent = True
        self.parser = HttpResponseParser(self)
        self.resp_headers = []
        head = self.head
        assert head is not None
        # An idempotent request may go again if its connection dies before any answer
        # (RFC 9110 §9.2.2): a pooled one the app closed as we reused it, or a new one
        # that a dying process's listener accepted but never served.
        if self.replays < MAX_REPLAYS and head.method in IDEMPOTENT:
            if pending:
                if self.request_done:
                    self.replay = pending
            elif head.body == NONE or not self.request_done:
                self.replay = []

    def _attach(self, up: UpstreamConnection) -> None:
        pending = self.pending
        self._use(up, pending)
        conn = self.conn
        if pending:
            self.pending = None
            self.pending_size = 0
            up.transport.writelines([self.up_head, *pending])
            conn.resume(conn.BUFFERED)
        else:
            up.transport.write(self.up_head)
        if self.request_done:
            conn.deadline_kind = RESPONSE
            conn.deadline = self.ctx.loop.time() + self.ctx.response_header_timeout
        if conn.writing_paused:
            up.pause_reading()

    # -- the response, fed by the upstream connection ----------------------------------

    def upstream_data(self, data: bytes) -> None:
        try:
            self.got_response = True
            parser = self.parser
            assert parser is not None
            try:
                parser.feed_data(data)
            except HttpParserUpgrade as e:
                self._flush()
                self._start_tunnel(data[e.args[0] :])
                return
            except HttpParserCallbackError as e:
                cause = e.__context__
                if isinstance(cause, _Unsolicited):
                    self.dirty = True
                elif isinstance(cause, ProxyError):
                    self._flush()
                    self._upstream_broken(cause.message)
                    return
                else:
                    self._flush()
                    self._crashed(cause)
                    return
            except HttpParserError as e:
                self._flush()
                self._upstream_broken(f"sent an invalid response ({e})")
                return
            out = self.out
            if out:
                send_parts(self.conn, out)
            if self.resp_done:
                self._complete()
        except Exception:
            self._crashed()

    def on_status(self, reason: bytes) -> None:
        self.resp_reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        head = self.head
        assert parser is not None and head is not None
        if self.resp_done:
            raise _Unsolicited
        status = parser.get_status_code()
        if status < 200:
            self._interim(status, head)
            return
        conn = self.conn
        if conn.deadline_kind == RESPONSE:
            conn.deadline_kind = 0
        self.status = status
        self.up_keep_alive = parser.should_keep_alive()
        no_body = head.method == b"HEAD"
        data, self.framing, self.client_keep_alive = response_head(
            status, self.resp_reason, self.resp_headers,
            no_body=no_body, http10=head.http10,
            # An answer before the whole request was read ends the connection.
            keep_alive=head.keep_alive and self.request_done and not self.ctx.draining,
        )  # fmt: skip
        self.out.append(data)
        self.bytes_out += len(data)
        self.resp_started = True
        self.replay = None
        if self.ticket is not None:
            self.ticket.step()
            self.ticket = None
        if no_body:
            # llhttp cannot be told the request was HEAD; the message ends here and this
            # parser is dropped with the exchange.
            self.resp_done = True

    def _interim(self, status: int, head: RequestHead) -> None:
        if status == 101:
            if head.upgrade is None:
                raise UpstreamFailed("answered 101 to a request that asked for no upgrade")
            self.status = 101
            self.resp_started = True
        if status == 101 or not head.http10:  # an HTTP/1.0 client expects no interim ones
            data = response_head(
                status, self.resp_reason, self.resp_headers,
                no_body=True, http10=head.http10, keep_alive=True,
            )[0]  # fmt: skip
            self.out.append(data)
            self.bytes_out += len(data)
        if status != 101 and self.request_done:
            self.conn.await_response()  # more waiting is allowed after an interim one
        # The final response comes through the same parser; the callbacks start afresh.
        self.resp_headers = []
        self.resp_reason = b""

    def on_body(self, body: bytes) -> None:
        if self.resp_done:
            self.dirty = True  # bytes after a HEAD response's head
            return
        n = len(body)
        self.bytes_out += n
        if self.framing == CHUNKED:
            self.out += (b"%x\r\n" % n, body, CRLF)
        else:
            self.out.append(body)

    def on_message_complete(self) -> None:
        if self.status >= 200:
            self.resp_done = True
            if self.framing == CHUNKED:
                self.out.append(LAST_CHUNK)  # written with the last chunk
                self.bytes_out += 5

    def _flush(self) -> None:
        out = self.out
        if out:
            if not self.conn.closing:
                self.conn.transport.writelines(out)
            out.clear()

    def _complete(self) -> None:
        up = self.upstream
        self.upstream = None
        if up is not None:
            if self.up_keep_alive and self.request_done and not self.dirty:
                self.ctx.pool.release(up)
            else:
                up.close()
        self._finish(self.status, None)
        self.conn.exchange_done(self, self.client_keep_alive and self.request_done)

    def upstream_lost(self, up: Upstream, exc: Exception | None) -> None:
        if up is not self.upstream or self.finished:
            return
        try:
            self._upstream_lost(up, exc)
        except Exception:
            self._crashed()

    def _upstream_lost(self, up: Upstream, exc: Exception | None) -> None:
        self.upstream = None
        if self.resp_started:
            self._flush()
            if self.framing == CLOSE and exc is None:
                self._finish(self.status, None)  # the body was delimited by the close
                self.conn.exchange_done(self, False)
            elif self.framing == CLOSE:
                # A reset is no end of body; a plain close would pass it off as one.
                self.conn.close(cut=True)
                self._finish(self.status, "the app reset the connection mid-response")
            else:
                self.conn.close()
                self._finish(self.status, "the app closed the connection mid-response")
            return
        if not self.got_response and self.replay is not None:
            # The connection died before any answer to an idempotent request: send it
            # again on a fresh connection, at once the first time (a pooled connection
            # the app had closed), then after waiting for the app's state to change
            # (its process is exiting; a refused connect then waits for its next one).
            self.replays += 1
            self.pending = self.replay or None
            self.replay = None
            self.conn.cancel_response_wait()
            if self.replays == 1:
                self.ctx.pool.connect(up.endpoint, self)
                return
            if self._retry_later():
                return
        self._upstream_broken("closed the connection before responding")

    def upstream_failed(self, reason: str) -> None:
        """The app failed this request (`reason` follows "app NAME")."""
        try:
            self._upstream_broken(reason)
        except Exception:
            self._crashed()

    def _upstream_broken(self, reason: str) -> None:
        if self.resp_started:
            self.conn.close()
            self._drop_upstream()
            self._finish(self.status, f"app {self.app!r} {reason}")
            return
        self.respond(UpstreamFailed(f"app {self.app!r} {reason}", app=self.app))

    def response_timeout(self) -> None:
        if not self.resp_started and not self.finished:
            t = self.ctx.response_header_timeout
            self.respond(
                ResponseTimeout(f"app {self.app!r} sent no response within {t:g}s", app=self.app)
            )

    def upstream_full(self, full: bool) -> None:
        if full:
            self.conn.pause(self.conn.BACKPRESSURE)
        else:
            self.conn.resume(self.conn.BACKPRESSURE)

    # -- holding while the app wakes ------------------------------------------------------

    def _hold(self, state: AppState) -> None:
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
            self.respond(HoldQueueFull(
                f"app {self.app!r} is waking and has too many requests waiting", app=self.app
            ))  # fmt: skip
            return
        self.queue = queue
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

    # -- connecting and retrying --------------------------------------------------------

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
        self._step_ticket()  # back in the waiting room: its slot goes to the next one
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
            self.dispatch(fresh=True)
        except Exception:
            self._crashed()

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
            self.respond(ShuttingDown("the proxy is shutting down; try again", app=self.app))
        elif self.resp_started and self.framing == CLOSE:
            # Its end would look like a complete body: reset instead, so the client knows.
            self.conn.close(cut=True)

    # -- upgrades ----------------------------------------------------------------------

    def _start_tunnel(self, upstream_bytes: bytes) -> None:
        up = self.upstream
        assert up is not None
        self.upstream = None
        up.exchange = None
        conn = self.conn
        conn.response_arrived()
        conn.tunnel_started()
        tunnel = Tunnel(self, conn, up, self.ctx.loop, self.ctx.tunnel_idle_timeout)
        up.tunnel = tunnel
        conn.tunnel = tunnel
        self._uncount()
        activity = self._activity()
        if activity is not None:
            activity.tunnel_opened(self.ctx.monotonic())
        self._step_ticket()
        if upstream_bytes:
            tunnel.from_upstream(upstream_bytes)
        if self.leftover:
            tunnel.from_client(self.leftover)
            self.leftover = None
        if conn.closing:
            tunnel.close()
        conn.resume(conn.UPGRADE)

    def tunnel_ended(self) -> None:
        activity = self._activity()
        if activity is not None:
            activity.tunnel_closed(self.ctx.monotonic())
        self._finish(101, None)

    def _activity(self) -> AppActivity | None:
        """The activity record the request started with: a tunnel counts on it from open
        to close, even if its app was removed meanwhile (nothing then brings it back)."""
        return self.route[3] if self.route is not None else None

    # -- our own answers and the end ----------------------------------------------------

    def respond(self, error: ProxyError) -> None:
        """Answer with `error` instead of the app (or close, if a head already went out)."""
        if self.finished:
            return
        self._drop_upstream()
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
        self._drop_upstream()  # the request may be half sent: this connection is done
        self._finish(self.status if self.resp_started else 499, "the client went away")

    def internal_error(self) -> None:
        self.respond(InternalError(f"app {self.app!r}: internal proxy error", app=self.app))

    def crashed(self, exc: BaseException) -> None:
        """`exc` was raised handling this request elsewhere (the plain path)."""
        self._crashed(exc)

    def _crashed(self, exc: BaseException | None = None) -> None:
        """An unexpected exception: log it, answer 502 if nothing went out, close.

        `exc` when it is not the exception being handled (one a parser callback raised).
        """
        self.ctx.log.error("request handling failed", app=self.app, exc_info=exc or True)
        try:
            self._drop_upstream()
            if self.resp_started or self.finished:
                self.conn.close()
                self._finish(self.status, "internal proxy error")
            else:
                self.internal_error()
        except Exception:
            self.ctx.log.exception("request cleanup failed", app=self.app)
            self.conn.close()

    # -- bookkeeping, each written once ---------------------------------------------------

    def _drop_upstream(self) -> None:
        """Close the upstream connection in use (its state is unknown now)."""
        up = self.upstream
        if up is not None:
            self.upstream = None
            up.close()

    def _step_ticket(self) -> None:
        """Let the next held request of this app go (this one answered, failed or left)."""
        ticket = self.ticket
        if ticket is not None:
            self.ticket = None
            ticket.step()

    def _uncount(self) -> None:
        """No longer a request in flight for the activity ledger."""
        counted = self.counted
        self.counted = NOT_COUNTED
        if counted and self.route is not None:
            end_counting(self.route, counted, self.ctx.monotonic())

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
        if self.ticket is not None:
            self._step_ticket()
        counted = self.counted
        self.counted = NOT_COUNTED
        settle(
            self.ctx, self.route or self.ctx.unrouted(self.host), counted, self.started,
            status, self.method, self.path, self.held, self.request_id, self.conn.peer,
            self.upstream_text, self.bytes_in, self.bytes_out, reason,
        )  # fmt: skip


def send_parts(conn: Client, out: list[bytes]) -> None:
    """What one read of the answer made, to the client in one write; `out` is emptied."""
    if not conn.closing:
        if len(out) == 1:
            conn.transport.write(out[0])
        elif len(out) <= 3 and len(out[-1]) + len(out[-2]) <= _JOIN_LIMIT:
            # A small head + body (or chunk): copying it into one buffer is cheaper than
            # uvloop's multi-buffer path (a write context per call).
            conn.transport.write(b"".join(out))
        else:
            conn.transport.writelines(out)
    out.clear()
