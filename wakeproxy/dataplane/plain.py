"""The plain request: the common case, relayed from end to end without an exchange.

A request with no body, on a keep-alive HTTP/1.1 connection with nothing queued before it,
for an app that is awake and has an idle pooled connection, is sent upstream as soon as the
client connection has its head (read whole, or field by field). Its answer is relayed as it
came, one write per read, when its head is plain: whole in the first read, a final status,
framed by Content-Length (or a 204/304, which have no body), and with no hop-by-hop field
but those `answers.answer_field` says to cut (`Connection: keep-alive|close`, Keep-Alive,
...), whose lines are cut from the bytes. The parser the upstream connection keeps for its
whole life (one per connection) checks the bytes; its only callback is one set test or
dictionary lookup per field, and the Content-Length tells where the answer ends. That is
most requests; all they run is in this module, the rules of `headers.py` and
`answers.py`, and `settle`.

Any other answer makes the request an `Exchange` (`Exchange.adopted`) before a byte of it is
relayed, and the exchange parses it from the start with its own rules: an answer that is
interim (1xx), chunked, delimited by close, with another hop-by-hop field or Connection
value, split over reads before its head ends, or invalid; so does a response-header
timeout, a lost connection, a client gone or a shutdown before the head. After the head
went out an exchange only finishes (a cut body, a client gone, a crash). Must never: read
a request body, hold, retry, connect, or answer itself.
"""

from __future__ import annotations

from typing import cast

from httptools import HttpParserError, HttpResponseParser

from wakeproxy.dataplane.accounting import begin_counting, settle
from wakeproxy.dataplane.answers import (
    CONNECTION,
    CUT_CLOSE,
    NOT_PLAIN,
    RELAY,
    RELAY_LENGTH,
    RELAYED_NAMES,
    answer_field,
    answer_field_kind,
    connection_verdict,
    cut_fields,
)
from wakeproxy.dataplane.context import Context, Route
from wakeproxy.dataplane.errors import BadRequest
from wakeproxy.dataplane.exchange import Exchange
from wakeproxy.dataplane.headers import LENGTH, NONE, RequestHead, upstream_head
from wakeproxy.dataplane.ports import RESPONSE, Client
from wakeproxy.dataplane.upstream import UpstreamConnection, UpstreamPool
from wakeproxy.model.apps import Endpoint

# How a final answer from HTTP/1.1 starts (an HTTP/1.0 app closes unless told otherwise).
_FINAL = (b"HTTP/1.1 2", b"HTTP/1.1 3", b"HTTP/1.1 4", b"HTTP/1.1 5")


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
    now = ctx.monotonic()
    up.begin(conn, ctx, head, route, now, begin_counting(now, activity, state, head.target))
    return up


class PlainConnection(UpstreamConnection):
    """An upstream connection that relays a plain request's answer itself; lent to an
    exchange or a tunnel, it is a plain `UpstreamConnection`."""

    __slots__ = (
        "_bytes_out",
        "_client",
        "_counted",
        "_ctx",
        "_cut",
        "_dirty",
        "_head",
        "_left",
        "_length",
        "_parser",
        "_plain",
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
        # One parser for the connection's life, fed whole answers only.
        self._parser: HttpResponseParser | None = None
        self._length: bytes | None = None  # the answer's Content-Length
        self._cut: list[tuple[bytes, bytes]] | None = None  # its hop-by-hop fields
        self._plain = True  # whether every field so far may be relayed as it came
        self.leftover: bytes | None = None

    @property
    def upstream(self) -> PlainConnection:
        """The connection whose reading the client pauses when it cannot keep up."""
        return self

    def begin(
        self, client: Client, ctx: Context, head: RequestHead, route: Route, started: float,
        counted: int,
    ) -> None:
        self._client = client
        self._ctx = ctx
        self._head = head
        self._route = route
        self.host, self.app = route[0], route[1]
        self._started = started
        self._counted = counted
        rid = head.request_id
        rid = self._request_id = rid if rid and client.trusted else ctx.ids.next()
        self._status = 0
        self._left = 0  # bytes of the answer's body still to come
        self._length = None
        self._cut = None
        self._plain = True
        self._dirty = False
        self._bytes_out = 0
        if self._parser is None:
            self._parser = HttpResponseParser(self)
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
        """The first read of the answer: relayed as it came if its head is plain, else
        the whole answer is an exchange's from here."""
        end = data.find(b"\r\n\r\n")
        if end < 0 or not data.startswith(_FINAL) or self._ctx.draining:
            # (an interim answer may have its final one behind it in this read, which the
            # parser would report as the status; draining, the answer must say `close`)
            self._take_over(data)
            return
        parser = self._parser
        assert parser is not None
        try:
            parser.feed_data(data)  # may run past the answer: see below
        except HttpParserError:
            self._parser = None
            self._take_over(data)  # the exchange reports the invalid answer
            return
        status = parser.get_status_code()
        length = self._length
        if status == 204 or status == 304:
            length = b"0"
        if not self._plain or length is None:
            self._parser = None  # left mid-answer: no use for a next one
            self._take_over(data)
            return
        answer_end = end + 4 + int(length)
        left = answer_end - len(data)
        if left < 0:
            # Bytes after the answer: relayed no further, the connection not reused (and
            # its parser, which read them as a next answer, dropped with it).
            data = data[:answer_end]
            self._dirty = True
            left = 0
        cut = self._cut
        if cut is not None:  # hop-by-hop fields (mostly `Connection: keep-alive`)
            relayed = cut_fields(data, end, cut)
            if relayed is None:
                self._parser = None
                self._take_over(data)
                return
            data = relayed
        self._status = status
        self._left = left
        if client.deadline_kind == RESPONSE:
            client.deadline_kind = 0
        self._bytes_out = len(data)
        if not client.closing:
            client.transport.write(data)
        if left == 0:
            self._finish(client)

    def on_header(self, name: bytes, value: bytes) -> None:
        if name in RELAYED_NAMES:  # most fields: relayed as they came
            return
        kind = answer_field_kind(name)
        if kind == RELAY_LENGTH:
            self._length = value
            return
        # Connection (cut when it is `keep-alive` or `close`), another hop-by-hop field,
        # or a spelling not seen yet
        verdict = connection_verdict(value) if kind == CONNECTION else None
        if verdict is None:
            verdict = answer_field(name, value)
        if verdict == RELAY:
            return
        if verdict == RELAY_LENGTH:
            self._length = value
        elif verdict == NOT_PLAIN:
            self._plain = False
        else:  # hop-by-hop: cut out of the bytes relayed
            if verdict == CUT_CLOSE:
                self._dirty = True  # the app closes the connection after this answer
            cut = self._cut
            if cut is None:
                self._cut = [(name, value)]
            else:
                cut.append((name, value))

    def _finish(self, client: Client) -> None:
        self._client = None
        if not self._dirty:
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
        # The client connection stays: a plain answer is framed, and none is made while
        # draining (then the answer is an exchange's, which says `close`).
        client.exchange_done(self, True)

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
