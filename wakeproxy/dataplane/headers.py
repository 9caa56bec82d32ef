"""Header rules of a proxy: hop-by-hop removal, forwarded headers and message framing.

Owns reading a parsed request head into a `RequestHead` (checking what llhttp leaves to
us), writing the head sent upstream, and writing the response head sent to the client.
It never touches sockets, routes or app state.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable

from wakeproxy.dataplane.errors import BadRequest, MethodNotAllowed

# Headers that describe one connection, never the message: not forwarded either way
# (RFC 9110 §7.6.1). Every header named in `Connection` is dropped as well.
HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)

# Connection tokens that are options, not header names.
_CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})
# Connection tokens never obeyed: options, and fields that frame or route the message.
# `Connection: content-length` must not strip the length of a body we still send on:
# the app would read that body as the next request (request smuggling).
_NOT_DROPPABLE = _CONNECTION_OPTIONS | {b"content-length", b"host"}

# Headers by which a proxy tells the app about the client, besides the three we set
# ourselves (X-Forwarded-For/-Proto/-Host): forwarded only when a trusted proxy sent them,
# since from anyone else they are whatever the client chose to claim.
RELAYED: frozenset[bytes] = frozenset(
    {
        b"forwarded",
        b"x-real-ip",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-server",
        b"x-forwarded-ssl",
        b"x-forwarded-scheme",
        b"x-forwarded-client-cert",
        b"true-client-ip",
        b"x-client-ip",
    }
)

# Request headers the reader looks at; anything else is copied as it came.
_SPECIAL = HOP_BY_HOP | RELAYED | {
    b"host",
    b"content-length",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-request-id",
    b"accept",
}

# Headers that decide where a request ends.
_FRAMING = frozenset({b"content-length", b"transfer-encoding"})

# A Host (or absolute-form authority) we route: a DNS-style name or a bracketed IPv6
# literal, then an optional port. Anything else (a path, userinfo, spaces, raw UTF-8, a
# comma-joined list) is a 400, never a lookup.
_VALID_HOST = re.compile(rb"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{0,5})?")


def valid_host(value: bytes) -> bool:
    return _VALID_HOST.fullmatch(value) is not None

IDEMPOTENT: frozenset[bytes] = frozenset(
    {b"GET", b"HEAD", b"OPTIONS", b"TRACE", b"PUT", b"DELETE"}
)

# Message body framing. Requests use NONE, LENGTH, CHUNKED; responses may also be CLOSE
# (delimited by the upstream closing, so the client connection closes after it).
NONE, LENGTH, CHUNKED, CLOSE = 0, 1, 2, 3

CRLF = b"\r\n"


class RequestHead:
    """A validated request head. `kept` holds the header fields forwarded as they came,
    flat: name, b": ", value, CRLF for each (joined once, with the rest of the head)."""

    __slots__ = (
        "_accept_html",
        "body",
        "host",
        "http10",
        "keep_alive",
        "kept",
        "method",
        "relayed",
        "request_id",
        "size",
        "target",
        "te",
        "upgrade",
        "xff",
        "xfh",
        "xfp",
    )

    raw = b""  # see RawHead

    def __init__(self) -> None:
        self.method = b""
        self.target = b""
        self.host = b""
        self.http10 = False
        self.keep_alive = True
        self.upgrade: bytes | None = None  # the Upgrade value of a valid upgrade request
        self.body = NONE
        self.te = b""
        self._accept_html = False
        self.kept: list[bytes] = []
        self.relayed: list[bytes] = []  # RELAYED fields, flat like `kept`
        self.xff: bytes | None = None
        self.xfp: bytes | None = None
        self.xfh: bytes | None = None
        self.request_id: bytes | None = None
        self.size = 0

    @property
    def accept_html(self) -> bool:
        """Whether the client asks for HTML (its last Accept field names text/html)."""
        return self._accept_html


class RawHead(RequestHead):
    """A head read whole by `raw_request_head`: `raw` is its request line and header
    fields as they came, forwarded unchanged. What every such head has in common is held
    by the class, so making one sets five fields (see `raw_request_head`)."""

    __slots__ = ("raw",)

    http10 = False
    keep_alive = True
    upgrade = None
    body = NONE
    te = b""
    kept: list[bytes] = []  # never changed: the fields are in `raw`
    relayed: list[bytes] = []
    xff: bytes | None = None  # but in a ClaimedRawHead
    xfp: bytes | None = None
    xfh: bytes | None = None
    request_id: bytes | None = None

    @property
    def accept_html(self) -> bool:
        # Only a held request that may get a waiting page asks: the head is searched then.
        values = _ACCEPT.findall(self.raw)
        return bool(values) and b"text/html" in values[-1].lower()


class ClaimedRawHead(RawHead):
    """A head read whole from a trusted proxy that claims what it saw of the client: its
    X-Forwarded-For/-Proto/-Host and X-Request-Id, taken out of `raw` as the field reader
    takes them (its relayed fields stay in `raw`, sent on as they came). These are slots
    of its own, since `RawHead` fixes them to None for every other head."""

    __slots__ = ("request_id", "xff", "xfh", "xfp")


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip().lower() for t in value.split(b",") if t.strip()]


def _absolute_form(url: bytes) -> tuple[bytes, bytes] | None:
    """`http://authority/path?q` → (authority, origin-form target); None if not absolute."""
    lower = url[:8].lower()
    if lower.startswith(b"http://"):
        rest = url[7:]
    elif lower.startswith(b"https://"):
        rest = url[8:]
    else:
        return None
    end = len(rest)
    for sep in (b"/", b"?", b"#"):
        i = rest.find(sep)
        if i != -1 and i < end:
            end = i
    authority, target = rest[:end], rest[end:]
    if not authority or b"@" in authority:
        raise BadRequest("the request target has no usable authority")
    if not target.startswith(b"/"):
        target = b"/" + target
    return authority, target


def read_request_head(
    method: bytes,
    url: bytes,
    headers: list[tuple[bytes, bytes]],
    version: str,
    keep_alive: bool,
    upgrade: bool,
) -> RequestHead:
    """Check a head llhttp accepted against the rules a proxy must add. Raises ProxyError."""
    if version != "1.1" and version != "1.0":
        raise BadRequest(f"HTTP/{version} is not supported")
    if method == b"CONNECT":
        raise MethodNotAllowed("CONNECT is not supported")
    h = RequestHead()
    h.method = method
    h.http10 = version == "1.0"
    h.keep_alive = keep_alive
    size = len(method) + len(url) + 12
    kept = h.kept
    host: bytes | None = None
    content_length: bytes | None = None
    te: bytes | None = None
    upgrade_value: bytes | None = None
    named: list[bytes] = []
    xff: list[bytes] = []
    for name, value in headers:
        size += len(name) + len(value) + 4
        lname = name.lower()
        if lname not in _SPECIAL:
            # (`find`, not `in`: on bytes, `in` first tries its operand as an integer and
            # raises and clears a TypeError, ~1k instructions more per field)
            if lname.find(b"_") >= 0 and lname.replace(b"_", b"-") in _FRAMING:
                # Some servers read `Transfer_Encoding` as `Transfer-Encoding`: the app
                # and we would then disagree on where this request ends.
                raise BadRequest(f"header {name.decode('latin-1')!r} is ambiguous")
            kept += (name, b": ", value, CRLF)
            continue
        if lname == b"host":
            if host is not None:
                raise BadRequest("more than one Host header")
            host = value.strip()
        elif lname == b"content-length":
            if content_length is not None and content_length != value:
                raise BadRequest("Content-Length values differ")
            content_length = value
            kept += (name, b": ", value, CRLF)
        elif lname == b"transfer-encoding":
            te = value if te is None else te + b", " + value
        elif lname == b"connection":
            if value.lower() not in _CONNECTION_OPTIONS:
                named.extend(t for t in _tokens(value) if t not in _NOT_DROPPABLE)
        elif lname == b"upgrade":
            upgrade_value = value
        elif lname == b"x-forwarded-for":
            xff.append(value)
        elif lname == b"x-forwarded-proto":
            h.xfp = value
        elif lname == b"x-forwarded-host":
            h.xfh = value
        elif lname == b"x-request-id":
            h.request_id = value
        elif lname == b"accept":
            h._accept_html = b"text/html" in value.lower()
            kept += (name, b": ", value, CRLF)
        elif lname in RELAYED:
            h.relayed += (name, b": ", value, CRLF)
        # keep-alive, proxy-connection, te, trailer: hop-by-hop, dropped
    h.size = size
    if xff:
        h.xff = b", ".join(xff)

    if te is not None:
        if content_length is not None:
            raise BadRequest("both Transfer-Encoding and Content-Length")
        codings = _tokens(te)
        if not codings or codings[-1] != b"chunked" or codings.count(b"chunked") != 1:
            raise BadRequest("Transfer-Encoding must end with chunked")
        if h.http10:
            raise BadRequest("Transfer-Encoding in an HTTP/1.0 request")
        h.body = CHUNKED
        h.te = b", ".join(codings)  # as the app will read them: no stray whitespace
    elif content_length is not None and content_length.strip(b" \t") != b"0":
        h.body = LENGTH

    absolute = _absolute_form(url) if not url.startswith(b"/") else None
    if absolute is not None:
        host, h.target = absolute
    elif url.startswith(b"/") or (url == b"*" and method == b"OPTIONS"):
        h.target = url
    else:
        raise BadRequest("the request target is not a path or an absolute URL")
    if not host:
        if not h.http10:
            raise BadRequest("the Host header is missing")
        host = b""
    h.host = host

    if upgrade and upgrade_value is not None:
        h.upgrade = upgrade_value
    if named:
        h.kept = _without(kept, set(named))
        if h.relayed:
            h.relayed = _without(h.relayed, set(named))
    return h


def _without(fields: list[bytes], names: set[bytes]) -> list[bytes]:
    """Flat header fields (4 parts each) without those whose name is in `names`."""
    out: list[bytes] = []
    for i in range(0, len(fields), 4):
        if fields[i].lower() not in names:
            out += fields[i : i + 4]
    return out


# The whole-head reader's patterns (`raw_request_head`). The request line of an
# origin-form HTTP/1.1 request, then Host as the first field, as clients put it (RFC 9112
# §3.2); its value without leading whitespace (trailing whitespace, which llhttp would
# keep and the field reader strip, leaves such a head to the field reader).
_RAW_HEAD = re.compile(rb"([A-Z]+) (/[^ ]*) HTTP/1\.1\r\n[Hh][Oo][Ss][Tt]:[ \t]*([^\s]+)\r\n")
# What the field reader does nothing with but drop: hop-by-hop fields that frame nothing
# and name nothing, and a lone `Connection: keep-alive` (what browsers send on HTTP/1.1).
_ONLY_DROPPED = HOP_BY_HOP - {b"connection", b"transfer-encoding", b"upgrade"}
# What a peer claims about the client: dropped when it is not a trusted proxy (our own
# X-Forwarded-* and X-Request-Id are sent instead), taken as the field reader takes it when
# it is.
_OURS = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-request-id")
_CLAIMED = RELAYED | set(_OURS)


def _names(names: frozenset[bytes] | set[bytes]) -> bytes:
    return b"|".join(sorted(re.escape(n) for n in names))


# A line of the lowercased head that starts with a field `read_request_head` looks at
# (Host and Accept aside: Accept is only read for a waiting page) or a `_` spelling of a
# framing one. Which group matched (`lastindex`) says what it is: 1 a whole line the field
# reader only drops, 2 a whole RELAYED line, 3 to 6 the value of one of `_OURS` (in that
# order) as llhttp gives it (without leading whitespace; trailing whitespace is kept), the
# line ending after it; none, any other field.
_DROPPED, _RELAYED_LINE, _XFF, _XFP, _XFH, _RID = 1, 2, 3, 4, 5, 6
_LOOKED_AT = re.compile(
    rb"\n(?:((?:connection:[ \t]*keep-alive[ \t]*|(?:"
    + _names(_ONLY_DROPPED)
    + rb"):[^\r\n]*)\r\n)|((?:"
    + _names(RELAYED)
    + rb"):[^\r\n]*\r\n)|"
    + b"|".join(re.escape(n) + rb":[ \t]*([^\r\n]*)\r\n" for n in _OURS)
    + rb"|(?:"
    + b"|".join(
        sorted(
            [re.escape(n) for n in _SPECIAL - _FRAMING - _ONLY_DROPPED - _CLAIMED - {b"accept"}]
            + [n.replace(b"-", b"[-_]") for n in _FRAMING]
        )
    )
    + rb"):)"
)
_ACCEPT = re.compile(rb"\naccept:[ \t]*([^\r\n]*)", re.IGNORECASE)
_new = object.__new__


def raw_request_head(
    data: bytes, max_head_bytes: int, max_headers: int, trusted: bool
) -> RawHead | None:
    """`data` as a request head read whole, without a look at each field, when it is one
    whole head (nothing after its blank line) of an origin-form HTTP/1.1 request other than
    HEAD or CONNECT, with Host first and no other field a rule needs to see (so no body, no
    upgrade, no Connection but `keep-alive`), within the limits. None otherwise, and then
    `read_request_head` reads it: everything it would refuse or change is left to it.

    The fields go upstream as they came, but those the field reader would only drop, and
    a trusted proxy's X-Forwarded-For/-Proto/-Host and X-Request-Id, which it takes (a
    `ClaimedRawHead`, as behind an ingress); llhttp must still check `data`."""
    n = len(data)
    if n > max_head_bytes or data.find(b"\r\n\r\n") != n - 4:
        return None
    m = _RAW_HEAD.match(data)
    if m is None:
        return None
    method, target, host = m.groups()
    if (
        method == b"HEAD"
        or method == b"CONNECT"
        # A field line is 4 bytes or more: only a longer head can have too many.
        or (n > 4 * max_headers and data.count(b"\n") - 2 > max_headers)
    ):
        return None
    low = data.lower()
    special = _LOOKED_AT.search(low, m.end() - 2)
    claimed = False
    if special is None:
        raw = data[:-2]
    else:
        kept: list[bytes] = []
        start = 0
        xff: list[bytes] = []
        xfp = xfh = rid = None
        while special is not None:
            kind = special.lastindex
            if kind is None:
                return None
            end = special.end()
            if trusted and kind != _DROPPED:
                if kind == _RELAYED_LINE:  # relayed as it came, as the field reader relays it
                    special = _LOOKED_AT.search(low, end - 1)
                    continue
                # Taken as the field reader takes it: every X-Forwarded-For, the last of
                # the others; the line is cut, and `upstream_head` writes them again.
                claimed = True
                value = data[special.start(kind) : end - 2]
                if kind == _XFF:
                    xff.append(value)
                elif kind == _XFP:
                    xfp = value
                elif kind == _XFH:
                    xfh = value
                else:
                    rid = value
            kept.append(data[start : special.start() + 1])
            start = end  # the line cut, as the field reader drops it
            special = _LOOKED_AT.search(low, end - 1)
        kept.append(data[start:-2])
        raw = b"".join(kept)
    h: RawHead
    if claimed:
        c: ClaimedRawHead = _new(ClaimedRawHead)
        c.xff = b", ".join(xff) if xff else None
        c.xfp = xfp
        c.xfh = xfh
        c.request_id = rid
        h = c
    else:
        h = _new(RawHead)
    h.method = method
    h.target = target
    h.host = host
    h.raw = raw
    h.size = n - 2  # as `read_request_head` counts it: without the blank line
    return h


def upstream_head(h: RequestHead, peer: bytes, trusted: bool, request_id: bytes) -> bytes:
    """The request head sent upstream: origin-form, HTTP/1.1, our forwarded headers."""
    raw = h.raw
    if raw:
        # A raw head has no field of its own among these: they are set from what we saw,
        # and from what a trusted proxy claims (taken out of `raw`, see ClaimedRawHead).
        if trusted and (h.xff or h.xfp or h.xfh):
            return b"".join((
                raw, b"X-Forwarded-For: ", h.xff + b", " + peer if h.xff else peer,
                b"\r\nX-Forwarded-Proto: ", h.xfp or b"http",
                b"\r\nX-Forwarded-Host: ", h.xfh or h.host,
                b"\r\nX-Request-Id: ", request_id, b"\r\n\r\n",
            ))  # fmt: skip
        return b"".join((
            raw, b"X-Forwarded-For: ", peer, b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: ",
            h.host, b"\r\nX-Request-Id: ", request_id, b"\r\n\r\n",
        ))  # fmt: skip
    parts = [h.method, b" ", h.target, b" HTTP/1.1\r\nHost: ", h.host, CRLF]
    parts.extend(h.kept)
    if h.body == CHUNKED:
        parts.append(b"Transfer-Encoding: " + h.te + CRLF)
    if h.upgrade is not None:
        parts.append(b"Connection: upgrade\r\nUpgrade: " + h.upgrade + CRLF)
    if trusted:
        parts.extend(h.relayed)
        xff = h.xff + b", " + peer if h.xff else peer
        xfp = h.xfp or b"http"
        xfh = h.xfh or h.host
    else:
        xff, xfp, xfh = peer, b"http", h.host
    parts += (
        b"X-Forwarded-For: ", xff,
        b"\r\nX-Forwarded-Proto: ", xfp,
        b"\r\nX-Forwarded-Host: ", xfh,
        b"\r\nX-Request-Id: ", request_id, b"\r\n\r\n",
    )  # fmt: skip
    return b"".join(parts)


# How response_head treats a header name, memoized per spelling as the app sends it
# (apps send the same few names over and over; lowercasing each one costs more than a
# lookup). Bounded, so names made up by an app cannot grow it without limit.
_PLAIN, _LENGTH, _TE, _CONNECTION, _UPGRADE, _DROP = 0, 1, 2, 3, 4, 5
_MEMO_SIZE = 1024
_response_kinds: dict[bytes, int] = {}
# The spellings of kind _PLAIN among them: `in` a set is a test without a call, for the
# plain path's per-field callback, where most fields are these.
_relayed_names: set[bytes] = set()
_status_lines: dict[tuple[int, bytes], bytes] = {}


def _response_kind(name: bytes) -> int:
    lname = name.lower()
    if lname == b"content-length":
        kind = _LENGTH
    elif lname == b"transfer-encoding":
        kind = _TE
    elif lname == b"connection":
        kind = _CONNECTION
    elif lname == b"upgrade":
        kind = _UPGRADE
    elif lname in HOP_BY_HOP:
        kind = _DROP
    else:
        kind = _PLAIN
    if len(_response_kinds) < _MEMO_SIZE:
        _response_kinds[name] = kind
        if kind == _PLAIN:
            _relayed_names.add(name)
    return kind


def response_head(
    status: int,
    reason: bytes,
    headers: list[tuple[bytes, bytes]],
    *,
    no_body: bool,
    http10: bool,
    keep_alive: bool,
) -> tuple[bytes, int, bool]:
    """The head sent to the client → (bytes, framing, whether the client connection stays).

    The body keeps the upstream's framing: Content-Length passes through, chunked is
    re-encoded chunk by chunk (or delimited by close for an HTTP/1.0 client), and a body
    delimited by the upstream closing is delimited by closing the client connection too.
    A 1xx head (interim) never carries framing or `Connection`.
    """
    line = _status_lines.get((status, reason))
    if line is None:
        line = b"HTTP/1.1 %d %s\r\n" % (status, reason)
        if len(_status_lines) < _MEMO_SIZE:
            _status_lines[(status, reason)] = line
    lines = [line]
    has_length = False
    te: bytes | None = None
    named: list[bytes] = []
    upgrade_value: bytes | None = None
    kinds = _response_kinds
    for name, value in headers:
        kind = kinds.get(name)
        if kind is None:
            kind = _response_kind(name)
        if kind == _PLAIN:
            lines += (name, b": ", value, CRLF)
        elif kind == _LENGTH:
            has_length = True
            lines += (name, b": ", value, CRLF)
        elif kind == _CONNECTION:
            if value.lower() not in _CONNECTION_OPTIONS:
                named.extend(t for t in _tokens(value) if t not in _NOT_DROPPABLE)
        elif kind == _TE:
            te = value if te is None else te + b", " + value
        elif kind == _UPGRADE:
            upgrade_value = value
        # other hop-by-hop fields: dropped
    if named:
        lines = [line, *_without(lines[1:], set(named))]

    if status < 200:
        if status == 101 and upgrade_value is not None:
            lines.append(b"Connection: upgrade\r\nUpgrade: " + upgrade_value + CRLF)
        lines.append(CRLF)
        return b"".join(lines), NONE, keep_alive

    if no_body or status == 204 or status == 304:
        framing = NONE
        if te is not None and not http10:
            lines.append(b"Transfer-Encoding: " + te + CRLF)
    elif te is not None:
        chunked = _tokens(te)[-1:] == [b"chunked"]
        framing = CHUNKED if chunked and not http10 else CLOSE
        if not http10 and (framing == CHUNKED or not chunked):
            # chunked is re-encoded as it came; another final coding is close-delimited
            lines.append(b"Transfer-Encoding: " + te + CRLF)
    elif has_length:
        framing = LENGTH
    else:
        framing = CLOSE
    if framing == CLOSE:
        keep_alive = False
    if not keep_alive:
        lines.append(b"Connection: close\r\n\r\n")
    elif http10:
        lines.append(b"Connection: keep-alive\r\n\r\n")
    else:
        lines.append(CRLF)
    return b"".join(lines), framing, keep_alive


class RequestIds:
    """Short ids unique per process start: a random prefix and a counter."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        pattern = os.urandom(5).hex().encode() + b"-%x"
        # The next id, made in C (a counter mapped through `%`): one call per request
        # with no Python frame.
        self.next: Callable[[], bytes] = map(pattern.__mod__, itertools.count(1)).__next__


# How the plain path treats each field of an answer it relays as it came (see plain.py):
# relayed, relayed and read for the framing, cut out of the bytes (hop-by-hop), or the
# answer is not plain. (RELAY and RELAY_LENGTH are the memoized kinds themselves: one
# lookup decides most fields.)
# CUT_CLOSE: cut, and the app closes the connection after this answer.
RELAY, RELAY_LENGTH, CUT, CUT_CLOSE, NOT_PLAIN = _PLAIN, _LENGTH, -1, -2, -3
# A `Connection` that names no field: cut out like the other hop-by-hop fields.
_CONNECTION_VERDICTS = {
    b"keep-alive": CUT, b"Keep-Alive": CUT, b"close": CUT_CLOSE, b"Close": CUT_CLOSE
}
# Each spelling's kind, as `response_head` memoizes it: one lookup per field; for the
# kind CONNECTION, the verdict by the value as it usually comes (None: ask `answer_field`).
answer_field_kind: Callable[[bytes], int | None] = _response_kinds.get
# Spellings seen before of fields relayed as they came (a subset of what `answer_field`
# says RELAY for: the others are not seen yet).
RELAYED_NAMES: frozenset[bytes] | set[bytes] = _relayed_names
CONNECTION = _CONNECTION
connection_verdict: Callable[[bytes], int | None] = _CONNECTION_VERDICTS.get


def answer_field(name: bytes, value: bytes) -> int:
    """RELAY, RELAY_LENGTH (Content-Length), CUT, CUT_CLOSE or NOT_PLAIN for a field of
    an answer the plain path relays as it came: the rules of `response_head` for the case
    where they only drop fields. Transfer-Encoding (another framing) and a `Connection` naming
    fields (which may come before it) are not plain."""
    kind = answer_field_kind(name)
    if kind is None:
        kind = _response_kind(name)
    if kind == _PLAIN:
        return RELAY
    if kind == _LENGTH:
        return RELAY_LENGTH
    if kind == _CONNECTION:
        verdict = _CONNECTION_VERDICTS.get(value)
        if verdict is None:
            verdict = _CONNECTION_VERDICTS.get(value.strip().lower(), NOT_PLAIN)
        return verdict
    if kind == _TE:
        return NOT_PLAIN
    return CUT  # Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade


def cut_fields(data: bytes, head_end: int, fields: list[tuple[bytes, bytes]]) -> bytes | None:
    """`data` (an answer's bytes, its head ending at `head_end`, the index of its final
    CRLF CRLF) without the lines of `fields` (name, value as llhttp read them); None if
    one cannot be found, which only an unusual spacing around the value causes."""
    for name, value in fields:
        line = b"\r\n%s: %s\r\n" % (name, value)
        # One call finds and splits (`find` and two slices take three).
        before, found, after = data.partition(line)
        if found and len(before) < head_end:
            data = before + b"\r\n" + after  # the CRLF that ends the line before it
            head_end -= len(line) - 2
            continue
        # another spacing: as llhttp reads it, OWS around the value
        pattern = re.compile(rb"\r\n" + re.escape(name) + rb":[ \t]*" + re.escape(value)
                             + rb"[ \t]*(?=\r\n)")  # fmt: skip
        match = pattern.search(data, 0, head_end + 2)
        if match is None:
            return None
        start, stop = match.span()
        data = data[:start] + data[stop:]
        head_end -= stop - start
    return data
