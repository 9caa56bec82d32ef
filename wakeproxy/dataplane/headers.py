"""Request header rules of a proxy: hop-by-hop removal, forwarded headers, framing.

Owns reading a request head into a `RequestHead` (field by field, checking what llhttp
leaves to us, or read whole from its bytes), writing the head sent upstream, request ids,
and the names and framing kinds both directions share (`answers.py` has the response's
rules). It never touches sockets, routes or app state.
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
CONNECTION_OPTIONS = frozenset({b"close", b"keep-alive", b"upgrade"})
# Connection tokens never obeyed: options, and fields that frame or route the message.
# `Connection: content-length` must not strip the length of a body we still send on:
# the app would read that body as the next request (request smuggling).
NOT_DROPPABLE = CONNECTION_OPTIONS | {b"content-length", b"host"}

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


def tokens(value: bytes) -> list[bytes]:
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
            if value.lower() not in CONNECTION_OPTIONS:
                named.extend(t for t in tokens(value) if t not in NOT_DROPPABLE)
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
        codings = tokens(te)
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
        h.kept = without(kept, set(named))
        if h.relayed:
            h.relayed = without(h.relayed, set(named))
    return h


def without(fields: list[bytes], names: set[bytes]) -> list[bytes]:
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


class RequestIds:
    """Short ids unique per process start: a random prefix and a counter."""

    __slots__ = ("next",)

    def __init__(self) -> None:
        pattern = os.urandom(5).hex().encode() + b"-%x"
        # The next id, made in C (a counter mapped through `%`): one call per request
        # with no Python frame.
        self.next: Callable[[], bytes] = map(pattern.__mod__, itertools.count(1)).__next__
