"""Response header rules of a proxy: the head sent to the client, and which fields of an
answer the plain path may relay as they came.

Owns rewriting a parsed response head (`response_head`: hop-by-hop fields and those
`Connection` names dropped, the framing kept or re-encoded, our own `Connection`), and the
plain path's verdict on each field of an answer relayed as bytes (`answer_field`) with
the cutting of hop-by-hop lines from those bytes (`cut_fields`). It never touches
sockets, routes or app state.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from wakeproxy.dataplane.headers import (
    CHUNKED,
    CLOSE,
    CONNECTION_OPTIONS,
    CRLF,
    HOP_BY_HOP,
    LENGTH,
    NONE,
    NOT_DROPPABLE,
    tokens,
    without,
)

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
            if value.lower() not in CONNECTION_OPTIONS:
                named.extend(t for t in tokens(value) if t not in NOT_DROPPABLE)
        elif kind == _TE:
            te = value if te is None else te + b", " + value
        elif kind == _UPGRADE:
            upgrade_value = value
        # other hop-by-hop fields: dropped
    if named:
        lines = [line, *without(lines[1:], set(named))]

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
        chunked = tokens(te)[-1:] == [b"chunked"]
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
RELAYED_NAMES: set[bytes] = _relayed_names  # the set itself: it grows as names come
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
