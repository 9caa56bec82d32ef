"""One request/response exchange: route, count, hold or forward, relay, log.

Owns a request from its complete head to its logged end: the activity it counts, the
hold, the upstream connection it borrows, the request body going up, the response
coming down (parsed by its own httptools response parser, head rewritten, body streamed
with its own framing), the one retry a dead pooled connection allows, and the access
record. It never reads the client socket (the ClientConnection feeds it) and never
decides how long a connection lives beyond saying whether it may stay open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpResponseParser,
)

from wakeproxy.dataplane.access import AccessRecord
from wakeproxy.dataplane.errors import (
    CLOSES_CONNECTION,
    RETRY_AFTER,
    AppUnavailable,
    HoldQueueFull,
    InternalError,
    ProxyError,
    ResponseTimeout,
    UnknownHost,
    UpstreamFailed,
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
    response_head,
    upstream_head,
)
from wakeproxy.dataplane.tunnel import Tunnel
from wakeproxy.dataplane.waiting_page import render_waiting_page
from wakeproxy.model.apps import Endpoint
from wakeproxy.model.routes import normalize_host

if TYPE_CHECKING:
    from wakeproxy.dataplane.activator import HoldQueue
    from wakeproxy.dataplane.client import ClientConnection
    from wakeproxy.dataplane.upstream import UpstreamConnection

# Request body buffered before an upstream is attached; beyond it the client is paused.
BUFFER_LIMIT = 65536
# Body bytes kept for replaying an idempotent request on a fresh connection.
REPLAY_LIMIT = 65536
_LAST_CHUNK = b"0\r\n\r\n"


class _Unsolicited(Exception):
    """The upstream sent a second response nobody asked for."""


class Exchange:
    __slots__ = (
        "app",
        "bytes_in",
        "bytes_out",
        "client_keep_alive",
        "conn",
        "counted",
        "ctx",
        "dirty",
        "endpoint",
        "error",
        "finished",
        "framing",
        "got_response",
        "head",
        "held",
        "held_since",
        "host",
        "leftover",
        "method",
        "out",
        "parser",
        "path",
        "pending",
        "pending_size",
        "queue",
        "replay",
        "replay_size",
        "request_done",
        "request_id",
        "resp_done",
        "resp_headers",
        "resp_reason",
        "resp_started",
        "retried",
        "reused",
        "running",
        "started",
        "status",
        "ticket",
        "up_head",
        "up_keep_alive",
        "upstream",
    )  # fmt: skip

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
        self.counted = False
        self.bytes_in = head_size
        self.bytes_out = 0
        self.running = False
        self.finished = False
        self.request_done = False
        self.upstream: UpstreamConnection | None = None
        self.endpoint: Endpoint | None = None
        self.parser: HttpResponseParser | None = None
        self.pending: list[bytes] | None = None
        self.pending_size = 0
        self.up_head = b""
        self.replay: list[bytes] | None = None
        self.replay_size = 0
        self.reused = False
        self.retried = False
        self.got_response = False
        self.status = 0
        self.resp_reason = b""
        self.resp_headers: list[tuple[bytes, bytes]] = []
        self.resp_started = False
        self.resp_done = False
        self.dirty = False
        self.framing = NONE
        self.client_keep_alive = False
        self.up_keep_alive = False
        self.out: list[bytes] = []
        self.held_since: float | None = None
        self.held: float | None = None
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
        host = self.host = normalize_host(head.host.decode("latin-1"))
        app = ctx.routes.table.resolve(host)
        if app is None:
            self.error = UnknownHost(f"no app serves host {host!r}")
            return
        self.app = app
        state = ctx.board.get(app)
        if state is None:
            return
        ignored = state.policy.ignored_paths
        if ignored and head.target.split(b"?", 1)[0].decode("latin-1") in ignored:
            return
        ctx.ledger.begin(app)
        self.counted = True

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        """Called once, when this exchange is the connection's current one."""
        self.running = True
        if self.error is not None:
            self.respond(self.error)
            return
        state = self.ctx.board.get(self.app)
        if state is None:
            self.respond(AppUnavailable(f"app {self.app!r} is not available", app=self.app))
            return
        endpoint = state.pick()
        if endpoint is not None:
            self.forward(endpoint)
            return
        head = self.head
        assert head is not None
        ctx = self.ctx
        if state.policy.waiting_page and head.method == b"GET" and head.accept_html:
            ctx.demand.request(self.app)
            failure = state.failure.reason if state.failure is not None else None
            keep = head.keep_alive and self.request_done and not ctx.draining
            data = render_waiting_page(
                self.app, failure, close=not keep, request_id=self.request_id
            )
            self._answer(data, 503, "waking up: sent the waiting page", keep)
            return
        queue = ctx.activator.hold(self, state)
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
        self.held = held
        self.queue = None
        self.ticket = queue
        try:
            self.conn.resume(self.conn.HELD)
            self.forward(endpoint)
        except Exception:
            self._crashed()

    def hold_failed(self, error: ProxyError, held: float) -> None:
        self.held = held
        self.queue = None
        try:
            self.respond(error)
        except Exception:
            self._crashed()

    def forward(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        head = self.head
        assert head is not None
        conn = self.conn
        self.up_head = upstream_head(head, conn.peer_bytes, conn.trusted, self.request_id)
        up = self.ctx.pool.acquire(endpoint)
        if up is not None:
            self._attach(up, reused=True)
        else:
            self.ctx.pool.connect(endpoint, self)

    def connected(self, up: UpstreamConnection) -> None:
        if self.finished:
            self.ctx.pool.release(up)  # nothing was sent on it
            return
        try:
            self._attach(up, reused=False)
        except Exception:
            self._crashed()

    def connect_failed(self, reason: str) -> None:
        if not self.finished:
            try:
                self.respond(UpstreamFailed(f"app {self.app!r}: {reason}", app=self.app))
            except Exception:
                self._crashed()

    def _attach(self, up: UpstreamConnection, *, reused: bool) -> None:
        head = self.head
        assert head is not None
        self.upstream = up
        up.exchange = self
        self.reused = reused
        self.parser = HttpResponseParser(self)
        replayable = reused and not self.retried and head.method in IDEMPOTENT
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
            self._send_up([_LAST_CHUNK], 5)
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

    def upstream_full(self, full: bool) -> None:
        if full:
            self.conn.pause(self.conn.BACKPRESSURE)
        else:
            self.conn.resume(self.conn.BACKPRESSURE)

    # -- response, parsed from the upstream's bytes -----------------------------------

    def upstream_data(self, data: bytes) -> None:
        try:
            self._upstream_data(data)
        except Exception:
            self._crashed()

    def _upstream_data(self, data: bytes) -> None:
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
                self.ctx.log.error("response handling failed", exc_info=cause, app=self.app)
                self._flush()
                self._upstream_broken("the proxy failed handling its response")
                return
        except HttpParserError as e:
            self._flush()
            self._upstream_broken(f"sent an invalid response ({e})")
            return
        if self.out:
            self._flush()
        if self.resp_done:
            self._complete()

    def on_message_begin(self) -> None:
        if self.resp_done:
            raise _Unsolicited
        self.resp_headers = []

    def on_status(self, reason: bytes) -> None:
        self.resp_reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self.resp_headers.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self.parser
        head = self.head
        assert parser is not None and head is not None
        status = parser.get_status_code()
        if status < 200:
            if status == 101:
                if head.upgrade is None:
                    raise UpstreamFailed("answered 101 to a request that asked for no upgrade")
                self.status = 101
                self.resp_started = True
            elif head.http10:
                return  # an HTTP/1.0 client does not expect interim responses
            data = response_head(
                status, self.resp_reason, self.resp_headers,
                no_body=True, http10=head.http10, keep_alive=True,
            )[0]  # fmt: skip
            self.out.append(data)
            self.bytes_out += len(data)
            if status != 101 and self.request_done:
                self.conn.await_response()  # more waiting is allowed after an interim one
            return
        self.conn.response_arrived()
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

    def _flush(self) -> None:
        out = self.out
        if out:
            conn = self.conn
            if not conn.closing:
                if len(out) == 1:
                    conn.transport.write(out[0])
                else:
                    conn.transport.writelines(out)
            out.clear()

    def _complete(self) -> None:
        if self.framing == CHUNKED:
            self.out.append(_LAST_CHUNK)
            self.bytes_out += 5
            self._flush()
        up = self.upstream
        self.upstream = None
        if up is not None:
            if self.up_keep_alive and self.request_done and not self.dirty:
                self.ctx.pool.release(up)
            else:
                up.close()
        self._finish(self.status, None)
        self.conn.exchange_done(self, self.client_keep_alive and self.request_done)

    def upstream_lost(self, up: UpstreamConnection) -> None:
        if up is not self.upstream or self.finished:
            return
        try:
            self._upstream_lost(up)
        except Exception:
            self._crashed()

    def _upstream_lost(self, up: UpstreamConnection) -> None:
        self.upstream = None
        if self.resp_started:
            self._flush()
            if self.framing == CLOSE:
                self._finish(self.status, None)  # the body was delimited by the close
                self.conn.exchange_done(self, False)
            else:
                self.conn.close()
                self._finish(self.status, "the app closed the connection mid-response")
            return
        if self.reused and not self.got_response and self.replay is not None:
            # The app closed a pooled connection as we reused it: one retry on a fresh one.
            self.retried = True
            self.pending = self.replay or None
            self.replay = None
            self.ctx.pool.connect(up.endpoint, self)
            return
        self._upstream_broken("closed the connection before responding")

    def _upstream_broken(self, reason: str) -> None:
        if self.resp_started:
            self.conn.close()
            up = self.upstream
            if up is not None:
                self.upstream = None
                up.close()
            self._finish(self.status, f"app {self.app!r} {reason}")
            return
        self.respond(UpstreamFailed(f"app {self.app!r} {reason}", app=self.app))

    def response_timeout(self) -> None:
        if not self.resp_started and not self.finished:
            t = self.ctx.response_header_timeout
            self.respond(
                ResponseTimeout(f"app {self.app!r} sent no response within {t:g}s", app=self.app)
            )

    # -- upgrades ----------------------------------------------------------------------

    def _start_tunnel(self, upstream_bytes: bytes) -> None:
        up = self.upstream
        assert up is not None
        self.upstream = None
        up.exchange = None
        conn = self.conn
        tunnel = Tunnel(self, conn, up)
        up.tunnel = tunnel
        conn.tunnel = tunnel
        ledger = self.ctx.ledger
        if self.counted:
            ledger.end(self.app)
            self.counted = False
        ledger.tunnel_opened(self.app)
        if self.ticket is not None:
            self.ticket.step()
            self.ticket = None
        if upstream_bytes:
            tunnel.from_upstream(upstream_bytes)
        if self.leftover:
            tunnel.from_client(self.leftover)
            self.leftover = None
        if conn.closing:
            tunnel.close()
        conn.resume(conn.UPGRADE)

    def tunnel_ended(self) -> None:
        self.ctx.ledger.tunnel_closed(self.app)
        self._finish(101, None)

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

    def _crashed(self) -> None:
        """An unexpected exception: log it, answer 502 if nothing went out, close."""
        self.ctx.log.exception("request handling failed", app=self.app)
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
        ctx = self.ctx
        duration = ctx.clock.monotonic() - self.started
        if self.counted:
            self.counted = False
            ctx.ledger.end(self.app)
        if self.ticket is not None:
            self.ticket.step()
            self.ticket = None
        ctx.stats.record(self.app, status, duration)
        record = AccessRecord(
            app=self.app,
            host=self.host,
            method=self.method.decode("latin-1"),
            path=self.path.decode("latin-1"),
            status=status,
            duration=duration,
            held=self.held,
            request_id=self.request_id.decode("latin-1"),
            client=self.conn.peer,
            upstream=str(self.endpoint) if self.endpoint is not None else None,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            reason=reason,
        )
        try:
            ctx.access_log(record)
        except Exception:
            ctx.log.exception("access log sink failed")
