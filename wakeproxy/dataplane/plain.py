"""The plain request: the common case, relayed from end to end without an exchange.

A request with no body, on a keep-alive HTTP/1.1 connection with nothing queued before it,
for an app that is awake and has an idle pooled connection, is sent upstream from the
client's head callback. Its answer is relayed as it came, one write per read, when its
head is clean: whole in the first read, HTTP/1.1, a final status, framed by Content-Length
(or a 204/304 with no body), with no hop-by-hop field but `Connection: keep-alive|close`
(cut out), no folded line and no bare CR or LF. That is decided over the bytes by compiled
patterns, not field by field in Python; llhttp, fed the same bytes with no callbacks, still
checks the syntax, and the Content-Length tells where the answer ends. That is most
requests; all they run is in this module, the request rules of `headers.py` and `settle`.

Any other answer makes the request an `Exchange` (`Exchange.adopted`) before a byte of it is
relayed, and the exchange parses it from the start with its own rules: an answer that is
interim (1xx), chunked, delimited by close, from HTTP/1.0, with other hop-by-hop fields,
split over reads before its head ends, or invalid; so does a response-header timeout, a
lost connection, a client gone or a shutdown before the head. After the head went out an
exchange only finishes (a cut body, a client gone, a crash). Must never: read a request
body, hold, retry, connect, or answer itself.
"""

from __future__ import annotations

from typing import cast

from httptools import HttpParserError, HttpResponseParser

from wakeproxy.dataplane.accounting import begin_counting, settle
from wakeproxy.dataplane.context import Context, Route
from wakeproxy.dataplane.errors import BadRequest
from wakeproxy.dataplane.exchange import Exchange
from wakeproxy.dataplane.headers import (
    LENGTH,
    NONE,
    RequestHead,
    relayable_answer,
    upstream_head,
)
from wakeproxy.dataplane.ports import RESPONSE, Client
from wakeproxy.dataplane.upstream import UpstreamConnection, UpstreamPool
from wakeproxy.model.apps import Endpoint


class _NoCallbacks:
    """The protocol of a parser that only checks: llhttp calls no Python per message."""


_CHECK_ONLY = _NoCallbacks()


def start_plain(conn: Client, ctx: Context, head: RequestHead) -> PlainConnection | None:
    """Send `head` (a request with no body) on an idle connection of its awake app, and
    return that connection, now relaying the answer; None, with nothing done, when the
    request is not plain after all (then an exchange takes it from the start)."""
    try:
        route = ctx.route(head.host)
    except BadRequest:
        return None
    state, activity = route[2], route[3]
    if state is None or activity is None:  # no app, or none on the board
        return None
    endpoints = state.endpoints
    if len(endpoints) != 1:
        endpoint = state.pick()
        if endpoint is None:
            return None
    else:
        endpoint = endpoints[0]
    up = ctx.pool.acquire(endpoint)
    if up is None:
        return None
    if not isinstance(up, PlainConnection):  # only where a pool was built without them
        ctx.pool.release(up)
        return None
    up.begin(conn, ctx, head, route, begin_counting(ctx, activity, state, head.target))
    return up


class PlainConnection(UpstreamConnection):
    """An upstream connection that relays a plain request's answer itself; lent to an
    exchange or a tunnel, it is a plain `UpstreamConnection`."""

    __slots__ = (
        "_bytes_out",
        "_client",
        "_client_keep",
        "_counted",
        "_ctx",
        "_dirty",
        "_first",
        "_head",
        "_keep",
        "_left",
        "_parser",
        "_request_id",
        "_route",
        "_started",
        "_status",
        "_up_head",
        "app",
        "host",
        "leftover",
    )

    # What the client connection reads of its current request (as of an exchange).
    request_done = True

    def __init__(self, pool: UpstreamPool, endpoint: Endpoint) -> None:
        super().__init__(pool, endpoint)
        self._client: Client | None = None  # the client of the plain request in flight
        # One checking parser for the connection's life, fed whole answers only.
        self._parser: HttpResponseParser | None = None
        self.leftover: bytes | None = None

    @property
    def upstream(self) -> PlainConnection:
        """The connection whose reading the client pauses when it cannot keep up."""
        return self

    def begin(
        self, client: Client, ctx: Context, head: RequestHead, route: Route, counted: int
    ) -> None:
        self._client = client
        self._ctx = ctx
        self._head = head
        self._route = route
        self.host, self.app = route[0], route[1]
        self._started = ctx.monotonic()
        self._counted = counted
        rid = head.request_id
        rid = self._request_id = rid if rid and client.trusted else ctx.ids.next()
        self._status = 0
        self._left = 0  # bytes of the answer's body still to come
        self._dirty = False
        self._bytes_out = 0
        if self._parser is None:
            self._parser = HttpResponseParser(_CHECK_ONLY)
        up_head = self._up_head = upstream_head(head, client.peer_bytes, client.trusted, rid)
        if client.writing_paused:
            self.pause_reading()
        self.transport.write(up_head)

    # -- the answer --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        client = self._client
        if client is None:
            UpstreamConnection.data_received(self, data)
            return
        try:
            if self._status == 0:
                self._answer_head(client, data)
                return
            left = self._left - len(data)
            if left < 0:  # bytes after the answer: relayed no further, connection not reused
                data = data[: self._left]
                self._dirty = True
                left = 0
            self._left = left
            parser = self._parser
            assert parser is not None
            try:
                parser.feed_data(data)
            except HttpParserError as e:  # cannot happen inside a length-framed body
                self._parser = None
                self._hand_over().upstream_failed(f"sent an invalid response ({e})")
                return
            self._bytes_out += len(data)
            if not client.closing:
                client.transport.write(data)
            if left == 0:
                self._finish(client)
        except Exception as e:
            self._parser = None
            if self._client is None:
                raise
            self._hand_over().crashed(e)

    def _answer_head(self, client: Client, data: bytes) -> None:
        """The first read of the answer: relayed as it came if its head is clean, else
        the whole answer is an exchange's from here."""
        answer = relayable_answer(data)
        if answer is None or self._ctx.draining:  # (draining: it must say `close`)
            self._take_over(data)
            return
        status, end, keep, cut, cut_end = answer
        left = end - len(data)
        if left < 0:  # bytes after the answer: relayed no further, connection not reused
            data = data[:end]
            self._dirty = True
            left = 0
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(data)
        except HttpParserError:
            self._parser = None
            self._take_over(data)  # the exchange reports the invalid answer
            return
        self._status = status
        self._keep = keep  # (llhttp's own answer is not kept once the message is complete)
        self._left = left
        self._client_keep = True
        if client.deadline_kind == RESPONSE:
            client.deadline_kind = 0
        if cut:
            data = data[:cut] + data[cut_end:]
        self._bytes_out = len(data)
        if not client.closing:
            client.transport.write(data)
        if left == 0:
            self._finish(client)

    def _finish(self, client: Client) -> None:
        self._client = None
        if self._keep and not self._dirty:
            self.pool.release(self)
        else:
            self._parser = None
            self.close()
        head = self._head
        settle(
            self._ctx, self._route, self._counted, self._started, self._status, head.method,
            head.target, None, self._request_id, client.peer, self.address, head.size,
            self._bytes_out, None,
        )  # fmt: skip
        client.exchange_done(self, self._client_keep)

    # -- becoming an exchange ------------------------------------------------------------

    def _hand_over(self) -> Exchange:
        """The exchange this request is from now on (the client's current one)."""
        client = cast(Client, self._client)
        self._client = None
        status = self._status
        plain = (
            self._route, self.host, self._request_id, self._started, self._counted,
            self._up_head, status != 0, status, self._bytes_out,
            (NONE if status == 204 or status == 304 else LENGTH) if status else NONE,
        )  # fmt: skip
        ex = Exchange.adopted(client, self._ctx, self._head, plain, self)
        client.handed_over(self, ex)
        return ex

    def _take_over(self, first: bytes | None = None) -> Exchange:
        """Hand over before the answer's head went out: the exchange parses what came."""
        ex = self._hand_over()
        if first:
            ex.upstream_data(first)
        return ex

    def connection_lost(self, exc: Exception | None) -> None:
        if self._client is not None:
            self._take_over()  # then told below, as its own connection
        super().connection_lost(exc)

    # What the client connection asks of its current request.

    def client_gone(self) -> None:
        self._take_over().client_gone()

    def response_timeout(self) -> None:
        self._take_over().response_timeout()

    def body_timeout(self) -> None:
        pass  # there is no request body

    def shutdown(self) -> None:
        if self._status == 0:
            self._take_over().shutdown()
        # else: a length-framed answer under way finishes, as an exchange's would
