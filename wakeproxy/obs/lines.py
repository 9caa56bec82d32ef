"""Where log events and access records become lines: JSON lines written in batches.

Owns the text of an access line (`{"timestamp":…,"level":"info","event":"request",…}`,
formatted by hand, byte for byte what `json.dumps` makes of `access_fields`) and the
batching that keeps it off the hot path: the data plane's call only appends its record
(a tuple that carries the request's start on the monotonic clock); records are
formatted and written in one `write` when `batch` lines are waiting or `flush_interval`
after the first, whichever comes first, and the stream is flushed then. A line's
timestamp is the request's end, put on the wall clock with one offset read per batch.
Outside a running event loop every line is written and flushed at once. Lines are made
as bytes (ASCII); on a UTF-8 text stream, like stdout, they go to the bytes under it
(after what its text layer holds), on any other they are written as text.

Must never: format or write per record inside a loop, call anything per record that
makes a system call, let a broken stream fail the request being logged, or drop what is
still waiting when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import io
import json
import math
import os
import time
import weakref
from collections.abc import Callable
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    from wakeproxy.dataplane.access import AccessRow

# Like asyncio.get_running_loop, but None outside a loop instead of raising. Each call
# costs a getpid() system call, so it runs once per batch, never per record.
_get_running_loop = asyncio.events._get_running_loop

# default=str: a stray non-JSON value must never fail the request that is being logged.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
# The escaping `json` applies to every string (ASCII output, \uXXXX beyond it), in C.
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii
_floor = math.floor

# Number texts looked up instead of formatted (a format costs ~700 instructions, a
# lookup ~40): three digits of the microseconds; whole milliseconds below 1000 with
# their point; hundredths of a millisecond as `json` writes them after the point
# (one trailing zero dropped: 12.30 is "12.3", 12.00 is "12.0"); byte counts below
# 10,000, filled as they come (made up front, they would hold ~440 KiB of memory at idle
# for sizes a cluster may never see).
_DIGITS3 = tuple(f"{i:03d}".encode() for i in range(1000))
_WHOLE_MS = tuple(f"{i}." for i in range(1000))
_CENTS = tuple(f"{i:02d}".removesuffix("0") for i in range(100))
_COUNTS: list[bytes | None] = [None] * 10_000


def _count(n: int) -> bytes:
    text = _COUNTS[n] = b"%d" % n
    return text

_BYTES_OUT_KEY = b',"bytes_out":'

# The bytes a JSON string holds as they are (`json` escapes the rest: controls, quote,
# backslash, and beyond ASCII): deleting them from a text leaves nothing when it needs
# no escaping. One C pass over a batch's paths and request ids.
_AS_IS = bytes(range(0x20, 0x7F)).replace(b'"', b"").replace(b"\\", b"")
_join = b"".join
_paths = itemgetter(3)
_request_ids = itemgetter(7)

# Distinct route-and-connection keys, and statuses, whose text is remembered before
# the memo starts afresh.
_MEMO_SIZE = 4096


class EventOutput(Protocol):
    """Where the access sink writes, at info level."""

    @property
    def enabled(self) -> bool: ...

    def emit(self, event: str, fields: dict[str, Any]) -> None: ...

    def lines_sink(self, fields: dict[str, Any]) -> Callable[[str], None]:
        """What `emit`s each line of a text (lines joined by newlines) with `fields`."""

    def access(self, record: AccessRow) -> None:
        """One `event="request"` line for a finished request."""


def access_fields(record: AccessRow) -> dict[str, Any]:
    """The fields of an access line, in line order (unknown hosts have `app: null`)."""
    (app, host, method, path, status, duration, held, request_id, client, upstream,
     bytes_in, bytes_out, reason) = record[:13]  # fmt: skip
    fields: dict[str, Any] = {
        "app": app or None,
        "host": host,
        "method": _text(method),
        "path": _text(path),
        "status": status,
        "duration_ms": round(duration * 1000.0, 2),
        "request_id": _text(request_id),
        "client": client,
        "upstream": upstream,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "reason": reason,
    }
    if held is not None:
        fields["held_ms"] = round(held * 1000.0, 2)
    return fields


def _text(value: bytes | str) -> str:
    """A field as read from the wire (bytes, taken as latin-1), or already text."""
    return value if isinstance(value, str) else value.decode("latin-1")


def _escaped(value: bytes | str) -> bytes:
    """A string field's JSON text between its quotes (ASCII, as `json` escapes it)."""
    return _string(_text(value))[1:-1].encode("ascii")


def _opt(value: str | None) -> str:
    return "null" if value is None else _string(value)


def _ms(seconds: float) -> str:
    """Seconds as JSON milliseconds: exactly `json.dumps(round(seconds * 1000.0, 2))`.

    The common case without formatting a float. `t` is the millisecond value times 100,
    rounded once; rounding `t` to an integer is rounding the exact value, except when
    `t` is within rounding of a half (the check), where `round` decides as `json` does.
    """
    t = seconds * 1000.0 * 100.0
    n = _floor(t + 0.5) if 0.0 <= t < 99_999.5 else -1
    if n < 0 or t - n <= -0.5:
        return repr(round(seconds * 1000.0, 2))
    return _WHOLE_MS[n // 100] + _CENTS[n % 100]


# The end of a line from the reason's key on, when there is no reason and no hold.
_PLAIN_END = b',"reason":null}\n'

# Where a block of lines (lines_sink) takes each later line's timestamp: NUL, which the
# JSON of an event or a field never holds (json escapes it).
_TIMESTAMP = "\x00"


def _end(reason: str | None, held: float | None) -> bytes:
    """The end of a line from the reason's key on."""
    text = "null" if reason is None else _string(reason)
    if held is None:
        return f',"reason":{text}}}\n'.encode()
    return f',"reason":{text},"held_ms":{_ms(held)}}}\n'.encode()


class JsonLines:
    """One JSON object per line on a text stream, without structlog's per-event chain."""

    def __init__(
        self,
        stream: TextIO,
        *,
        cluster: str | None = None,
        enabled: bool = True,
        flush_interval: float = 0.25,
        batch: int = 128,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._buffer = _buffer_of(stream)
        self._cluster = "" if cluster is None else f'"cluster":{_encode(cluster)},'
        self._enabled = enabled
        self._flush_interval = flush_interval
        self._batch = batch
        self._wall = wall
        # The clock of the records' start times (the data plane's): a line's wall time
        # is its end on this clock plus the offset between the two, read once per batch.
        self._monotonic = monotonic
        self._records: list[AccessRow] = []
        # How many waiting records call for `_appended`: 1 while no flush is scheduled
        # (the next record schedules one), else `batch`. One comparison per record.
        self._due = 1
        # Lines already formatted, older than every waiting record (events, and the
        # records that came before them).
        self._text: list[bytes] = []
        # The loop a flush is scheduled on; None when nothing waits to be flushed.
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._second = -1
        self._second_text = ""
        self._access_head = f'Z","level":"info","event":"request",{self._cluster}'
        self._pieces: dict[
            tuple[str, str, bytes, int, str, str | None], tuple[bytes, bytes, bytes]
        ] = {}
        # duration_ms and the request id's key, by hundredths of a millisecond below
        # 100 ms, filled as they come.
        self._ms_texts: list[bytes | None] = [None] * 10_000
        _open.add(self)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def access(self, record: AccessRow) -> None:
        records = self._records
        records.append(record)
        if len(records) >= self._due:
            self._appended()

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        head = f'"level":"info","event":{_encode(event)},{self._cluster}'
        body = _encode(fields)
        rest = f"{head}{body[1:]}\n" if len(body) > 2 else f"{head[:-1]}}}\n"
        self._event(self._wall(), rest)

    def lines_sink(self, fields: dict[str, Any]) -> Callable[[str], None]:
        """A callable taking a block of lines (joined by newlines) that writes one info
        line per line, its event the line, with `fields`: the block is escaped in one
        call and shares one timestamp, and what follows each event is made once here.
        An app may print 10,000 lines a second on the event loop that also proxies."""
        body = _encode(fields)
        tail = (f'",{self._cluster}{body[1:]}\n' if len(body) > 2
                else f'",{self._cluster}'[:-1] + "}\n")
        lead = '"level":"info","event":"'
        # _TIMESTAMP marks where each later line's timestamp goes.
        between = f"{tail}{_TIMESTAMP}{lead}"
        wall, event = self._wall, self._event

        def sink(text: str) -> None:
            if "\\" not in text:
                # Without a backslash in the text, `\n` in its escaped form can only be
                # one of its newlines.
                escaped = _string(text)[1:-1].replace("\\n", between)
            else:
                # A list's items are joined by '","' in its JSON, which never occurs
                # inside an escaped string (a quote there follows a backslash).
                escaped = _encode(text.split("\n"))[2:-2].replace('","', between)
            event(wall(), lead + escaped + tail)

        return sink

    def _event(self, wall: float, rest: str) -> None:
        """An event line (or lines, `rest` holding _TIMESTAMP before each later one), from
        its level on, at `wall`: formatted now, after the access lines waiting before it."""
        second = _floor(wall)
        stamp = f'{self._timestamp(second)}{_floor((wall - second) * 1e6):06d}Z",'
        text = self._text
        if self._records:
            text.append(self._take_records())
        line = stamp + (rest if _TIMESTAMP not in rest else rest.replace(_TIMESTAMP, stamp))
        text.append(line.encode())
        self._appended()

    def _appended(self) -> None:
        """Lines were added: write them if a batch is full, and see that a flush follows."""
        if len(self._records) + len(self._text) >= self._batch:
            self.write_pending()
        loop = self._flush_loop
        if loop is not None and not loop.is_closed():
            return  # the flush already scheduled covers this line
        running = _get_running_loop()
        if running is None:
            self.flush()
        else:  # also recovers when the loop of an earlier flush went away
            self._flush_loop = running
            self._due = self._batch
            running.call_later(self._flush_interval, self.flush)

    def write_pending(self) -> None:
        """Format what waits and hand it to the stream in one write (not flushed)."""
        text = self._text
        if self._records:
            text.append(self._take_records())
        if not text:
            return
        self._text = []
        data = b"".join(text)
        # A closed or broken stream must not fail the request being logged.
        with contextlib.suppress(OSError, ValueError):
            if self._buffer is not None:
                self._stream.flush()  # what the text layer holds was written before
                self._buffer.write(data)
            else:
                self._stream.write(data.decode("utf-8", "replace"))

    def flush(self) -> None:
        self._flush_loop = None
        self._due = 1
        self.write_pending()
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def _take_records(self) -> bytes:
        records = self._records
        self._records = []
        return self._lines(records)

    def _timestamp(self, second: int) -> str:
        """`{"timestamp":"…:SS.` for a whole second: formatting a time costs ~1 µs."""
        if second != self._second:
            self._second = second
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second_text = f'{{"timestamp":"{text}.'
        return self._second_text

    def _lines(self, records: list[AccessRow]) -> bytes:
        """The text of access lines: bytes pieces per line, looked up (no float format),
        and one join for the whole batch.

        The request's method, path and id stay the bytes read from the wire (latin-1,
        as the rest of the data plane reads them); a batch whose paths and ids need no
        JSON escaping, the common case, is proved so with one C pass over them all and
        written as it is. Records made by hand may hold text there instead: escaped."""
        out: list[bytes] = []
        add = out.extend
        offset = self._wall() - self._monotonic()
        pieces = self._pieces
        floor, digits, ms_texts, counts = _floor, _DIGITS3, self._ms_texts, _COUNTS
        try:
            as_is = not (
                _join(map(_paths, records)).translate(None, _AS_IS)
                or _join(map(_request_ids, records)).translate(None, _AS_IS)
            )
        except TypeError:  # text, not bytes, in a record made by hand
            as_is = False
        # The second the last line fell in, as floats: compared without conversions.
        second = next_second = 0.0
        head = b""
        for (app, host, method, path, status, duration, held, request_id, client, upstream,
             bytes_in, bytes_out, reason, started) in records:  # fmt: skip
            wall = started + duration + offset
            if not second <= wall < next_second:
                whole = floor(wall)
                head = self._timestamp(whole).encode()
                second = float(whole)
                next_second = second + 1.0
            us = floor((wall - second) * 1e6)
            # _ms, inlined, and its text remembered below 100 ms.
            t = duration * 1000.0 * 100.0
            n = floor(t + 0.5) if 0.0 <= t < 9_999.5 else -1
            ms = (
                f'{_ms(duration)},"request_id":"'.encode() if n < 0 or t - n <= -0.5
                else ms_texts[n] or self._ms_text(n)
            )  # fmt: skip
            # What repeats from request to request is escaped once and looked up after:
            # the route's part (app, host, method), the status's and the connection's
            # (client, upstream).
            route, code, peer = (
                pieces.get((app, host, method, status, client, upstream))
                or self._piece(app, host, method, status, client, upstream)
            )
            if not as_is:
                path, request_id = _escaped(path), _escaped(request_id)
            add((
                head, digits[us // 1000], digits[us % 1000], route, path, code, ms,
                request_id, peer,
                (counts[bytes_in] or _count(bytes_in)) if bytes_in < 10_000
                else b"%d" % bytes_in,
                _BYTES_OUT_KEY,
                (counts[bytes_out] or _count(bytes_out)) if bytes_out < 10_000
                else b"%d" % bytes_out,
                _PLAIN_END if reason is None and held is None else _end(reason, held),
            ))  # fmt: skip
        return _join(out)

    def _ms_text(self, n: int) -> bytes:
        text = self._ms_texts[n] = f'{_WHOLE_MS[n // 100]}{_CENTS[n % 100]},"request_id":"'.encode()
        return text

    def _piece(
        self, app: str, host: str, method: bytes, status: int, client: str,
        upstream: str | None,
    ) -> tuple[bytes, bytes, bytes]:
        """For one route, status and connection (app null when none), the line from its
        level to the path's opening quote, from the path's closing quote to duration_ms's
        key, and from the request id's closing quote to the request bytes' key."""
        pieces = self._pieces
        if len(pieces) >= _MEMO_SIZE:
            pieces.clear()
        three = pieces[app, host, method, status, client, upstream] = (
            f'{self._access_head}"app":{_string(app) if app else "null"},'
            f'"host":{_string(host)},"method":{_string(_text(method))},"path":"'.encode(),
            f'","status":{status},"duration_ms":'.encode(),
            f'","client":{_opt(client)},"upstream":{_opt(upstream)},"bytes_in":'.encode(),
        )
        return three


def _buffer_of(stream: TextIO) -> io.BufferedIOBase | None:
    """The bytes under a text stream that writes UTF-8 or ASCII as it is given (no
    newline translation): lines, ASCII already, go there without a decode and an encode
    per batch. None for any other stream, which is given text."""
    if not isinstance(stream, io.TextIOWrapper) or os.linesep != "\n":
        return None
    try:
        encoding = codecs.lookup(stream.encoding).name
    except LookupError:
        return None
    buffer = stream.buffer
    if encoding not in ("utf-8", "ascii") or not isinstance(buffer, io.BufferedIOBase):
        return None
    return buffer


class StructlogOutput:
    """Access lines through a structlog logger: for the console format, where cost is moot."""

    def __init__(self, logger: Any, *, enabled: bool = True) -> None:
        self._logger = logger
        self._enabled = enabled

    @property
    def enabled(self) -> bool:
        return self._enabled

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        self._logger.info(event, **fields)

    def lines_sink(self, fields: dict[str, Any]) -> Callable[[str], None]:
        def sink(text: str) -> None:
            for line in text.split("\n"):
                self._logger.info(line, **fields)

        return sink

    def access(self, record: AccessRow) -> None:
        self.emit("request", access_fields(record))


class OrderedStream:
    """The stream other log lines go to: writes what `lines` holds first, so a process's
    log stays in the order things happened. Those lines are rare; this costs them little."""

    def __init__(self, stream: TextIO, lines: JsonLines) -> None:
        self._stream = stream
        self._lines = lines

    def write(self, text: str) -> int:
        self._lines.write_pending()
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()


_open: weakref.WeakSet[JsonLines] = weakref.WeakSet()


@atexit.register
def _flush_open() -> None:
    """Lines still waiting for their flush when the process ends are written, not lost."""
    for lines in list(_open):
        lines.flush()
