"""The response half of an exchange: the upstream's answer, parsed and relayed.

Owns what comes back from an upstream connection: its own httptools response parser,
interim (1xx) heads, the rewritten final head, the body streamed with its framing kept
(one write per upstream read), the end of the response (HEAD and bodiless statuses
included), the pooled connection's return or the one retry a dead one allows, and the
switch to a tunnel on 101. It never reads the client socket and never picks endpoints.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from httptools import (
    HttpParserCallbackError,
    HttpParserError,
    HttpParserUpgrade,
    HttpResponseParser,
)

from wakeproxy.dataplane.errors import ProxyError, ResponseTimeout, UpstreamFailed
from wakeproxy.dataplane.headers import CHUNKED, CLOSE, CRLF, NONE, RequestHead, response_head
from wakeproxy.dataplane.tunnel import Tunnel
from wakeproxy.model.apps import Endpoint

# How an exchange counts in the activity ledger (an int slot: cheaper than an enum here).
NOT_COUNTED, COUNTED, QUIET = 0, 1, 2

if TYPE_CHECKING:
    from wakeproxy.dataplane.activator import HoldQueue
    from wakeproxy.dataplane.client import ClientConnection
    from wakeproxy.dataplane.context import Context
    from wakeproxy.dataplane.exchange import Exchange
    from wakeproxy.dataplane.upstream import UpstreamConnection

LAST_CHUNK = b"0\r\n\r\n"
# Output parts joined into one buffer before writing when the largest two fit in this.
_JOIN_LIMIT = 16384

RESPONSE_SLOTS = (
    "client_keep_alive",
    "dirty",
    "framing",
    "got_response",
    "out",
    "parser",
    "resp_done",
    "resp_headers",
    "resp_reason",
    "resp_started",
    "status",
    "up_keep_alive",
)


class _Unsolicited(Exception):
    """The upstream sent a second response nobody asked for."""


class ResponseRelay:
    """The response-side methods of Exchange, which declares every slot (RESPONSE_SLOTS)."""

    # Provided by Exchange.
    conn: ClientConnection
    ctx: Context
    head: RequestHead | None
    app: str
    upstream: UpstreamConnection | None
    endpoint: Endpoint | None
    request_done: bool
    finished: bool
    replays: int
    replay: list[bytes] | None
    pending: list[bytes] | None
    counted: int  # NOT_COUNTED, COUNTED or QUIET (in flight, but not activity)
    ticket: HoldQueue | None
    leftover: bytes | None
    bytes_out: int

    def __init__(self) -> None:
        self.parser: HttpResponseParser | None = None
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

    def _me(self) -> Exchange:
        return cast("Exchange", self)

    def respond(self, error: ProxyError) -> None:
        raise NotImplementedError

    def _finish(self, status: int, reason: str | None) -> None:
        raise NotImplementedError

    def _crashed(self, exc: BaseException | None = None) -> None:
        raise NotImplementedError

    def _retry_later(self) -> bool:
        raise NotImplementedError

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
                self._flush()
                self._crashed(cause)
                return
        except HttpParserError as e:
            self._flush()
            self._upstream_broken(f"sent an invalid response ({e})")
            return
        if self.out:
            self._flush()
        if self.resp_done:
            self._complete()

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

    def _flush(self) -> None:
        out = self.out
        if out:
            conn = self.conn
            if not conn.closing:
                if len(out) == 1:
                    conn.transport.write(out[0])
                elif len(out) <= 3 and len(out[-1]) + len(out[-2]) <= _JOIN_LIMIT:
                    # A small head + body (or chunk): copying it into one buffer is
                    # cheaper than uvloop's multi-buffer path (a write context per call).
                    conn.transport.write(b"".join(out))
                else:
                    conn.transport.writelines(out)
            out.clear()

    def _complete(self) -> None:
        if self.framing == CHUNKED:
            self.out.append(LAST_CHUNK)
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
        self.conn.exchange_done(self._me(), self.client_keep_alive and self.request_done)

    def upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        if up is not self.upstream or self.finished:
            return
        try:
            self._upstream_lost(up, exc)
        except Exception:
            self._crashed()

    def _upstream_lost(self, up: UpstreamConnection, exc: Exception | None) -> None:
        self.upstream = None
        if self.resp_started:
            self._flush()
            if self.framing == CLOSE and exc is None:
                self._finish(self.status, None)  # the body was delimited by the close
                self.conn.exchange_done(self._me(), False)
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
                self.ctx.pool.connect(up.endpoint, self._me())
                return
            if self._retry_later():
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
        conn.response_arrived()
        conn.tunnel_started()
        tunnel = Tunnel(self._me(), conn, up)
        up.tunnel = tunnel
        conn.tunnel = tunnel
        ledger = self.ctx.ledger
        if self.counted:
            ledger.end(self.app, self.counted == QUIET)
            self.counted = NOT_COUNTED
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
