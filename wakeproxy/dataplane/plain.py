"""The plain request: the common case, relayed from end to end without an exchange.

A request with no body, on a keep-alive HTTP/1.1 connection with nothing queued before it,
for an app that is awake and has an idle pooled connection, is sent upstream from the
client's head callback. Its answer comes back through a parser the upstream connection
keeps for its whole life (one per connection, not one per request), with callbacks of its
own, and goes to the client one write per read. That is most requests; all they run is in
this module, the head rules of `headers.py` and `settle`.

Anything else about such a request makes it an `Exchange` (`Exchange.adopted`) at the first
sign: an answer that is interim (1xx), chunked or delimited by close; an answer that is
invalid before its head is through; a response-header timeout; a lost connection; a client
gone; a shutdown; a crash. Until the answer's head went out the exchange parses what came
so far again from the start, with its own parser, so its rules apply unchanged; after that
it only finishes. Must never: read a request body, hold, retry, connect, or answer itself.
"""

from __future__ import annotations

from typing import cast

from httptools import HttpParserCallbackError, HttpParserError, HttpResponseParser

from wakeproxy.dataplane.accounting import begin_counting, settle
from wakeproxy.dataplane.context import Context
from wakeproxy.dataplane.errors import BadRequest
from wakeproxy.dataplane.exchange import Exchange, send_parts
from wakeproxy.dataplane.headers import LENGTH, NONE, RequestHead, response_head, upstream_head
from wakeproxy.dataplane.ports import RESPONSE, Client
from wakeproxy.dataplane.upstream import UpstreamConnection, UpstreamPool
from wakeproxy.model.apps import Endpoint


class _HandOver(Exception):
    """Raised in a parser callback: this answer needs an exchange."""


class _Extra(Exception):
    """Raised in a parser callback: the app sent more than the answer."""


def start_plain(conn: Client, ctx: Context, head: RequestHead) -> PlainConnection | None:
    """Send `head` (a request with no body) on an idle connection of its awake app, and
    return that connection, now relaying the answer; None, with nothing done, when the
    request is not plain after all (then an exchange takes it from the start)."""
    try:
        host, app = ctx.route(head.host)
    except BadRequest:
        return None
    if app is None:
        return None
    state = ctx.states.get(app)
    if state is None:
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
    up.begin(conn, ctx, head, app, host, begin_counting(ctx, app, state, head.target))
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
        "_done",
        "_fields",
        "_first",
        "_framing",
        "_head",
        "_keep",
        "_out",
        "_parser",
        "_reason",
        "_request_id",
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
        self._parser: HttpResponseParser | None = None
        self.leftover: bytes | None = None

    @property
    def upstream(self) -> PlainConnection:
        """The connection whose reading the client pauses when it cannot keep up."""
        return self

    def begin(
        self, client: Client, ctx: Context, head: RequestHead, app: str, host: str, counted: int
    ) -> None:
        self._client = client
        self._ctx = ctx
        self._head = head
        self.app = app
        self.host = host
        self._started = ctx.monotonic()
        self._counted = counted
        rid = head.request_id
        rid = self._request_id = rid if rid and client.trusted else ctx.ids.next()
        self._status = 0
        self._reason = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._out: list[bytes] = []
        self._first: bytes | None = None
        self._done = False
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
                # The head is not through: keep what came, for an exchange to parse again.
                first = self._first
                self._first = data if first is None else first + data
            parser = self._parser
            assert parser is not None
            try:
                parser.feed_data(data)
            except HttpParserCallbackError as e:
                self._parser = None  # stopped mid-message: no use for a next answer
                if isinstance(e.__context__, _HandOver):
                    self._take_over()
                    return
                if not isinstance(e.__context__, _Extra):
                    raise
                self._dirty = True  # bytes after the answer: the connection is not reused
            except HttpParserError as e:
                self._parser = None
                if self._done:
                    self._dirty = True  # bytes after the answer: the connection is not reused
                elif self._status == 0:
                    self._take_over()  # the exchange reports the invalid answer
                    return
                else:
                    send_parts(client, self._out)
                    self._hand_over().upstream_failed(f"sent an invalid response ({e})")
                    return
            out = self._out
            if out:
                send_parts(client, out)
            if self._done:
                self._finish(client)
        except Exception as e:
            self._parser = None
            if self._client is None:
                raise
            self._hand_over().crashed(e)

    def on_status(self, reason: bytes) -> None:
        if self._done:
            raise _Extra
        self._reason = reason

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        parser = self._parser
        client = self._client
        assert parser is not None and client is not None
        status = parser.get_status_code()
        if status < 200:
            raise _HandOver  # interim answers and upgrades: the exchange's
        data, framing, keep = response_head(
            status, self._reason, self._fields, no_body=False, http10=False,
            keep_alive=not self._ctx.draining,
        )  # fmt: skip
        if framing != LENGTH and framing != NONE:
            raise _HandOver  # chunked, or delimited by close: the exchange's
        self._keep = parser.should_keep_alive()
        self._client_keep = keep
        self._framing = framing
        self._status = status
        self._first = None
        if client.deadline_kind == RESPONSE:
            client.deadline_kind = 0
        self._out.append(data)
        self._bytes_out += len(data)

    def on_body(self, body: bytes) -> None:
        self._out.append(body)
        self._bytes_out += len(body)

    def on_message_complete(self) -> None:
        self._done = True

    def _finish(self, client: Client) -> None:
        self._client = None
        if self._keep and not self._dirty:
            self.pool.release(self)
        else:
            self.close()
        head = self._head
        settle(
            self._ctx, self.app, self._counted, self._started, self._status, self.host,
            head.method, head.target, None, self._request_id, client.peer, self.address,
            head.size, self._bytes_out, None,
        )  # fmt: skip
        client.exchange_done(self, self._client_keep)

    # -- becoming an exchange ------------------------------------------------------------

    def _hand_over(self) -> Exchange:
        """The exchange this request is from now on (the client's current one)."""
        client = cast(Client, self._client)
        self._client = None
        plain = (
            self.app, self.host, self._request_id, self._started, self._counted,
            self._up_head, self._status != 0, self._status, self._bytes_out,
            self._framing if self._status else NONE,
        )  # fmt: skip
        ex = Exchange.adopted(client, self._ctx, self._head, plain, self)
        client.handed_over(self, ex)
        return ex

    def _take_over(self) -> Exchange:
        """Hand over before the answer's head went out: the exchange parses what came."""
        first = self._first
        self._first = None
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
        self._take_over().shutdown()
