"""The client side of the proxy: one asyncio Protocol per accepted connection.

Owns the client socket: reading request heads (one that arrives whole and needs no rule
is only checked by a parser without callbacks and sent on as it came; anything else goes
through the httptools parser field by field), handing each to the plain path or an
Exchange, answering pipelined requests in order, the reasons reading is paused, the
head / idle / body / response-head / tunnel-idle deadlines and the stalled-send deadline
(all checked by the server's tick) and closing. It never talks to an upstream itself and
never decides routing or holding.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from typing import ClassVar, NoReturn, cast

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpRequestParser,
)

from wakeproxy.dataplane.context import Context
from wakeproxy.dataplane.errors import (
    BadRequest,
    HeadTimeout,
    HeadTooLarge,
    InternalError,
    ProxyError,
    UriTooLong,
)
from wakeproxy.dataplane.exchange import Exchange
from wakeproxy.dataplane.headers import NONE, RequestHead, raw_request_head, read_request_head
from wakeproxy.dataplane.plain import PlainConnection, start_plain
from wakeproxy.dataplane.ports import BODY, HEAD, IDLE, RESPONSE, TUNNEL, TunnelEnd

# After an error answer, unread input is drained this long before closing, so the
# client reads our answer instead of a reset.
LINGER_SECONDS = 2.0


class _Stop(Exception):
    """Raised inside a parser callback to stop parsing; the reason is already recorded."""


class _Lean:
    """The callbacks of the parser that only checks heads read whole: none."""


class ClientConnection(asyncio.Protocol):
    # Reasons reading from the client is paused (a bit each; reading resumes when none is left).
    PIPELINE: ClassVar[int] = 1  # a further request arrived while one is in progress
    BACKPRESSURE: ClassVar[int] = 2  # the upstream's write buffer is full
    HELD: ClassVar[int] = 4  # the request is held and its body stays in the kernel
    BUFFERED: ClassVar[int] = 8  # body waiting for an upstream connection
    UPGRADE: ClassVar[int] = 16  # an upgrade request awaits the upstream's answer
    STOPPED: ClassVar[int] = 32  # the request stream is broken; we only finish what is queued

    __slots__ = (
        "_closed",
        "_eof",
        "_headers",
        "_in_head",
        "_lean",
        "_parser",
        "_parsing",
        "_partial",
        "_paused",
        "_queue",
        "_raised",
        "_start_pending",
        "_stopped",
        "_url",
        "active",
        "closing",
        "ctx",
        "deadline",
        "deadline_kind",
        "peer",
        "peer_bytes",
        "send_deadline",
        "send_mark",
        "transport",
        "trusted",
        "tunnel",
        "writing_paused",
    )  # fmt: skip

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport = cast(asyncio.Transport, None)
        self._parser = HttpRequestParser(self)
        # A second parser, with no callbacks, only checks the syntax of heads read whole
        # (see `data_received`); made for the first one (~560 bytes). Each parser is only
        # ever fed whole messages, so both stay at a message boundary whichever took the
        # last one.
        self._lean: HttpRequestParser | None = None
        self.peer = ""
        self.peer_bytes = b""
        self.trusted = False
        self.active: Exchange | PlainConnection | None = None
        # Pipelined requests waiting their turn. A list, not a deque: an empty deque
        # weighs ~600 bytes, on every connection, for what is almost always empty.
        self._queue: list[Exchange] = []
        self._raised: Exception | None = None
        self._parsing: Exchange | None = None
        self._start_pending = False
        self._stopped = False
        self._paused = 0
        self._in_head = False
        self._partial = 0
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self.tunnel: TunnelEnd | None = None
        self.writing_paused = False
        self.closing = False  # nothing more is written
        self._closed = False  # the transport was told to close
        self._eof = False  # the client half-closed: close after what it asked for
        self.deadline = 0.0
        self.deadline_kind = 0
        # While writing is paused: when the client must next have read something, and
        # how many bytes were still unsent when it last did.
        self.send_deadline = 0.0
        self.send_mark = 0

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        t = self.transport = cast(asyncio.Transport, transport)
        ctx = self.ctx
        if len(ctx.connections) >= ctx.max_connections or ctx.draining:
            self.closing = True
            t.abort()
            return
        ctx.connections.add(self)
        peer = t.get_extra_info("peername")
        ip = str(peer[0]) if peer else ""
        self.peer = ip
        self.peer_bytes = ip.encode("latin-1")
        self.trusted = ctx.is_trusted(ip)
        self._set_deadline(IDLE, ctx.head_timeout)

    def data_received(self, data: bytes) -> None:
        if self.active is None and not self._in_head and self.tunnel is None and not self._stopped:
            # The common request: one whole head with no body on an idle connection, that no
            # rule needs to see field by field (`raw_request_head`). Checked by the lean
            # parser and sent on as it came, with no Python call per field; anything else
            # is the full parser's, fed `data` as if this had not looked.
            ctx = self.ctx
            head = raw_request_head(data, ctx.max_head_bytes, ctx.max_headers, self.trusted)
            if head is not None:
                lean = self._lean
                if lean is None:
                    lean = self._lean = HttpRequestParser(_Lean)
                try:
                    lean.feed_data(data)
                except (HttpParserError, HttpParserUpgrade):
                    # Stopped mid-message, so of no further use (a fresh one is made if
                    # need be); the full parser finds the same fault and answers it.
                    self._lean = None
                else:
                    try:
                        plain = start_plain(self, ctx, head)
                        if plain is None:
                            self._start_whole(head)
                            return
                    except Exception as e:
                        self._parse_failed(e)
                        return
                    # Sent, and its answer relayed, there.
                    self.active = plain
                    self.deadline_kind = RESPONSE
                    self.deadline = ctx.loop.time() + ctx.response_header_timeout
                    return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        """`data` through the full parser, its callbacks and the field-by-field reader."""
        if self.tunnel is not None:
            self.tunnel.from_client(data)
            return
        if self._stopped:
            return
        in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except HttpParserUpgrade as e:
            self._upgrade_data(data[e.args[0] :])
        except HttpParserCallbackError as e:
            # What our callback raised; httptools' __context__ is overwritten when this
            # runs while another exception is being handled.
            cause = self._raised or e.__context__
            self._raised = None
            self._parse_failed(cause)
        except HttpParserError as e:
            self._parse_failed(BadRequest(f"malformed request: {e}"))
        except Exception as e:
            self._parse_failed(e)
        if self._in_head and not self._stopped:
            if in_head:
                # A head spread over reads: bound what llhttp may be accumulating for it.
                self._partial += len(data)
                if self._partial > self.ctx.max_head_bytes:
                    self._parse_failed(HeadTooLarge("the request head is too large"))
            if self.active is None and self.deadline_kind != HEAD:
                # Only a head left incomplete by this read needs its deadline.
                self._set_deadline(HEAD, self.ctx.head_timeout)
        ex = self.active
        if ex is not None and not ex.request_done and not self._paused:
            # The body is ours to read: it must keep coming.
            if self.deadline_kind == 0 or self.deadline_kind == BODY:
                self._set_deadline(BODY, self.ctx.body_timeout)
        elif self.deadline_kind == BODY:
            self.deadline_kind = 0
        if self._start_pending:
            self._start_pending = False
            ex = self.active
            if isinstance(ex, Exchange):  # set with the exchange `_enqueue` made current
                try:
                    ex.start()
                except Exception:
                    self._start_failed(ex)

    def eof_received(self) -> bool | None:
        """The client finished sending (a half-close, like `nc -N` or shutdown(SHUT_WR)).

        Requests that arrived whole are still answered, then the connection closes; a
        request cut short, or a connection with nothing to answer, closes now. A client
        that closed for good is noticed when the answer meets its reset."""
        if self._in_head or self._parsing is not None or self.closing:
            return None  # a request cut short: the client is gone
        if self.tunnel is not None:
            self.tunnel.client_eof()
            return True
        if self.active is None and not self._queue:
            return None
        # Not passed on to the app: some (uvicorn) drop a request whose client half-closed
        # before they answered, which direct happens only when the app is slow.
        self._eof = True
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = True
        self._closed = True
        self.ctx.connections.discard(self)
        tunnel = self.tunnel
        if tunnel is not None:
            tunnel.client_closed()
        active = self.active
        if active is not None:
            self.active = None
            active.client_gone()
        for ex in self._queue:
            ex.client_gone()
        self._queue.clear()
        self._parsing = None
        # The parser holds our bound methods; without it this connection is freed by
        # refcounting rather than by the cyclic garbage collector.
        del self._parser

    def pause_writing(self) -> None:
        self.writing_paused = True
        self.send_deadline = self.ctx.loop.time() + self.ctx.send_timeout
        self.send_mark = unsent_bytes(self.transport)
        if self.tunnel is not None:
            self.tunnel.client_full(True)
        elif self.active is not None and self.active.upstream is not None:
            self.active.upstream.pause_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.tunnel is not None:
            self.tunnel.client_full(False)
        elif self.active is not None and self.active.upstream is not None:
            self.active.upstream.resume_reading()

    # -- a request head read whole (see `data_received`) --------------------------------

    def _start_whole(self, head: RequestHead) -> None:
        """A head read whole that the plain path did not take: an exchange, as the full
        parser's callbacks would have made it."""
        ex = Exchange(self, self.ctx, head, head_size=head.size)
        self.active = ex
        self.deadline_kind = 0
        ex.request_complete()
        self._run(ex)

    # -- httptools request callbacks ---------------------------------------------------

    def on_message_begin(self) -> None:
        self._headers = []
        self._url = b""
        self._in_head = True
        self._partial = 0
        if self.active is not None:
            self.pause(self.PIPELINE)

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self.ctx.max_head_bytes:
            self._raise(UriTooLong("the request target is too long"))

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # trailer fields of a chunked body: not forwarded
        headers = self._headers
        headers.append((name, value))
        if len(headers) > self.ctx.max_headers:
            self._raise(HeadTooLarge("the request has too many header fields"))

    def on_headers_complete(self) -> None:
        self._in_head = False
        p = self._parser
        method = p.get_method()
        url = self._url
        try:
            head = read_request_head(
                method, url, self._headers, p.get_http_version(),
                p.should_keep_alive(), p.should_upgrade(),
            )  # fmt: skip
            if head.size > self.ctx.max_head_bytes:
                raise HeadTooLarge("the request head is too large")
        except ProxyError as error:
            self._fail(Exchange(self, self.ctx, None, error, method=method, target=url))
            self._raise(_Stop())
        if (
            self.active is None
            and head.body == NONE
            and head.upgrade is None
            and head.keep_alive
            and not head.http10
            and head.method != b"HEAD"
        ):
            plain = start_plain(self, self.ctx, head)
            if plain is not None:  # the common case: sent, and its answer relayed, there
                self.active = plain
                self.await_response()
                return
        ex = Exchange(self, self.ctx, head, head_size=head.size)
        self._parsing = ex
        self._enqueue(ex)

    def _raise(self, error: Exception) -> NoReturn:
        """Raise from a parser callback, remembering what for `data_received`."""
        self._raised = error
        raise error

    def on_body(self, body: bytes) -> None:
        ex = self._parsing
        if ex is not None:
            ex.request_body(body)

    def on_message_complete(self) -> None:
        ex = self._parsing
        self._parsing = None
        if ex is not None:
            ex.request_complete()

    # -- request flow ------------------------------------------------------------------

    def _enqueue(self, ex: Exchange) -> None:
        if self.active is None:
            self.active = ex
            self.deadline_kind = 0
            self._start_pending = True
        else:
            self._queue.append(ex)

    def _run(self, ex: Exchange) -> None:
        try:
            ex.start()
        except Exception:
            self._start_failed(ex)

    def _start_failed(self, ex: Exchange) -> None:
        self.ctx.log.exception("request handling failed", app=ex.app)
        ex.internal_error()
        self.close()

    def _fail(self, ex: Exchange) -> None:
        """Queue an error answer after which the connection closes."""
        self._stopped = True
        self.pause(self.STOPPED)
        self._enqueue(ex)

    def _parse_failed(self, cause: BaseException | None) -> None:
        if isinstance(cause, _Stop):
            return
        if isinstance(cause, ProxyError):
            error = cause
        else:
            self.ctx.log.error("request parsing failed", exc_info=cause)
            error = InternalError("internal proxy error")
        target = self._parsing
        self._parsing = None
        if target is not None:
            self._stopped = True
            self.pause(self.STOPPED)
            target.request_failed(error)
        else:
            self._fail(Exchange(self, self.ctx, None, error, method=self._method_or_empty()))

    def _method_or_empty(self) -> bytes:
        try:
            return self._parser.get_method() if self._url else b""
        except Exception:
            return b""

    def _upgrade_data(self, rest: bytes) -> None:
        """Bytes after an upgrade request's head wait for the upstream's answer."""
        ex = self._queue[-1] if self._queue else self.active
        if ex is None:
            return
        if rest:
            ex.leftover = rest
        self.pause(self.UPGRADE)

    def handed_over(self, plain: object, ex: object) -> None:
        """The plain request `plain` became the exchange `ex`."""
        if self.active is plain:
            self.active = cast(Exchange, ex)

    def exchange_done(self, ex: object, keep_alive: bool) -> None:
        """`ex` has answered; go on with the next request, or close."""
        active = self.active
        if ex is not active or active is None:
            return
        self.active = None
        ctx = self.ctx
        if keep_alive and not (
            self.closing or self._queue or self._eof or self._stopped or self._paused
            or self._in_head or ctx.draining
        ):  # fmt: skip
            # The common end: nothing waits, and the connection idles until the next request.
            self.deadline_kind = IDLE
            self.deadline = ctx.loop.time() + ctx.idle_timeout
            return
        self._go_on(active, keep_alive)

    def _go_on(self, ex: Exchange | PlainConnection, keep_alive: bool) -> None:
        """After an answer: the next request, a head still coming, closing, or idling."""
        if self.closing:
            return
        if not keep_alive or self.ctx.draining:
            self.close(linger=self._stopped or not ex.request_done)
            return
        leftover = ex.leftover
        ex.leftover = None
        if self._queue:
            nxt = self.active = self._queue.pop(0)
            if not self._queue:
                self.resume(self.PIPELINE)
            self._run(nxt)
            return
        if self._eof:
            self.close()
            return
        if self._stopped:
            self.close(linger=True)
            return
        ctx = self.ctx
        if self._in_head:
            self.deadline_kind = HEAD
            self.deadline = ctx.loop.time() + ctx.head_timeout
        else:
            self.deadline_kind = IDLE
            self.deadline = ctx.loop.time() + ctx.idle_timeout
        if self._paused:
            self.resume(self.PIPELINE)
        if self._paused & self.UPGRADE:
            # The upgrade was declined: what followed its head is the next request.
            self.resume(self.UPGRADE)
            if leftover:
                self.data_received(leftover)

    # -- deadlines (checked by the server's tick) --------------------------------------

    def _set_deadline(self, kind: int, seconds: float) -> None:
        self.deadline_kind = kind
        self.deadline = self.ctx.loop.time() + seconds

    def await_response(self) -> None:
        self._set_deadline(RESPONSE, self.ctx.response_header_timeout)

    def response_arrived(self) -> None:
        if self.deadline_kind == RESPONSE:
            self.deadline_kind = 0

    cancel_response_wait = response_arrived  # the request went back to waiting for an app

    def tunnel_started(self) -> None:
        self._set_deadline(TUNNEL, self.ctx.tunnel_idle_timeout)

    def deadline_passed(self) -> None:
        kind = self.deadline_kind
        self.deadline_kind = 0
        if kind == IDLE:
            self.close()
        elif kind == HEAD:
            if self.active is None and not self.closing:
                t = self.ctx.head_timeout
                error = HeadTimeout(f"no complete request head in {t:g}s")
                ex = Exchange(self, self.ctx, None, error)
                self._fail(ex)
                self._start_pending = False
                self._run(ex)
        elif kind == RESPONSE and self.active is not None:
            self.active.response_timeout()
        elif kind == BODY and self.active is not None:
            self.active.body_timeout()
        elif kind == TUNNEL and self.tunnel is not None:
            self.tunnel.close()

    def send_checked(self, now: float) -> None:
        """The tick's look at a paused send: progress pushes the deadline on, like nginx's
        `send_timeout` (the time between two successful writes), never a fixed deadline:
        a slow but steady reader (a phone on a bad link) must not be cut."""
        unsent = unsent_bytes(self.transport)
        if unsent < self.send_mark:
            self.send_mark = unsent
            self.send_deadline = now + self.ctx.send_timeout
            if self.deadline_kind == TUNNEL:
                self.deadline = now + self.ctx.tunnel_idle_timeout
        elif unsent > self.send_mark:
            self.send_mark = unsent  # more was queued: not the client's progress
        if self.send_deadline <= now:
            self.send_stalled()

    def send_stalled(self) -> None:
        """The client read nothing of what we sent for `client_send_timeout`."""
        self.writing_paused = False
        self.ctx.log.info("client stopped reading; closing", client=self.peer)
        if self.tunnel is not None:
            self.tunnel.close()
        self.close(cut=True)

    def shutdown(self) -> None:
        """The drain's grace is over: answer or cut what is left, then close."""
        if self.tunnel is not None:
            self.tunnel.close()
        elif self.active is not None:
            self.active.shutdown()
        self.close()

    # -- output and reading ------------------------------------------------------------

    def send(self, data: bytes) -> None:
        if not self.closing:
            self.transport.write(data)

    def pause(self, reason: int) -> None:
        if not self._paused and not self.closing:
            self.transport.pause_reading()
            if self.deadline_kind == BODY:
                self.deadline_kind = 0  # not the client's fault while we do not read
        self._paused |= reason

    def resume(self, reason: int) -> None:
        if self._paused & reason:
            self._paused &= ~reason
            if not self._paused and not self.closing:
                self.transport.resume_reading()
                ex = self.active
                if ex is not None and not ex.request_done and self.deadline_kind == 0:
                    self._set_deadline(BODY, self.ctx.body_timeout)

    @property
    def busy(self) -> bool:
        """Serving a request or a tunnel (an idle keep-alive connection is not busy)."""
        return self.active is not None or bool(self._queue) or self.tunnel is not None

    def close(self, *, linger: bool = False, cut: bool = False) -> None:
        """Close after pending output is written.

        With `linger`, first half-close and discard what the client still sends for a
        while: closing with unread input would reset the connection and could destroy
        the answer we just wrote. With `cut`, reset it at once instead: for a response
        whose end the client could otherwise mistake for a complete one.
        """
        t = self.transport
        if cut:
            self.closing = True
            self._closed = True
            _reset(t)
            return
        if self._closed:
            return
        if linger and not self.closing and t.can_write_eof():
            self.closing = True
            self._stopped = True
            t.write_eof()
            self._paused = 0
            t.resume_reading()
            self._set_deadline(IDLE, LINGER_SECONDS)
            return
        self.closing = True
        self._closed = True
        t.close()


def unsent_bytes(transport: asyncio.Transport) -> int:
    """Bytes written but not yet taken by the client: the transport's buffer plus what the
    kernel has not had acknowledged (SIOCOUTQ). The client reading shrinks it."""
    unsent = transport.get_write_buffer_size()
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError, ValueError):
            out = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, _INT_ZERO)
            unsent += struct.unpack("i", out)[0]
    return unsent


_INT_ZERO = struct.pack("i", 0)

# SO_LINGER on with a zero timeout: closing sends a reset instead of a normal close.
_LINGER_ZERO = struct.pack("ii", 1, 0)


def _reset(transport: asyncio.Transport) -> None:
    """Close with a TCP reset: a plain close after a partial body could read as its end."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
    transport.abort()
