"""Where log events and access records become lines: JSON lines written in batches.

Owns the text of an access line (`{"timestamp":…,"level":"info","event":"request",…}`,
formatted by hand with the same escaping and number forms `json` uses) and the batching
that keeps it off the hot path: the data plane's call only remembers the record and its
wall time; records are formatted and written in one `write` when `batch` of them are
waiting or `flush_interval` after the first, whichever comes first, and the stream is
flushed then. Outside a running event loop every line is written and flushed at once.

Must never: format or write per record inside a loop, call anything per record that
makes a system call, let a broken stream fail the request being logged, or drop what is
still waiting when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TextIO

# Like asyncio.get_running_loop, but None outside a loop instead of raising. Each call
# costs a getpid() system call, so it runs once per batch, never per record.
_get_running_loop = asyncio.events._get_running_loop

# default=str: a stray non-JSON value must never fail the request that is being logged.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode
# The escaping `json` applies to every string (ASCII output, \uXXXX beyond it), in C.
_string: Callable[[str], str] = json.encoder.encode_basestring_ascii


class AccessRecordLike(Protocol):
    """What the sink reads from one finished request (the data plane's AccessRecord)."""

    @property
    def app(self) -> str: ...
    @property
    def host(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def status(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def held(self) -> float | None: ...
    @property
    def request_id(self) -> str: ...
    @property
    def client(self) -> str | None: ...
    @property
    def upstream(self) -> str | None: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def reason(self) -> str | None: ...


class EventOutput(Protocol):
    """Where the access sink writes, at info level."""

    @property
    def enabled(self) -> bool: ...

    def emit(self, event: str, fields: dict[str, Any]) -> None: ...

    def lines_sink(self, fields: dict[str, Any]) -> Callable[[str], None]:
        """What `emit`s each line of a text (lines joined by newlines) with `fields`."""

    def access(self, record: AccessRecordLike) -> None:
        """One `event="request"` line for a finished request."""


def access_fields(record: AccessRecordLike) -> dict[str, Any]:
    """The fields of an access line, in line order (unknown hosts have `app: null`)."""
    fields: dict[str, Any] = {
        "app": record.app or None,
        "host": record.host,
        "method": record.method,
        "path": record.path,
        "status": record.status,
        "duration_ms": round(record.duration * 1000.0, 2),
        "request_id": record.request_id,
        "client": record.client,
        "upstream": record.upstream,
        "bytes_in": record.bytes_in,
        "bytes_out": record.bytes_out,
        "reason": record.reason,
    }
    if record.held is not None:
        fields["held_ms"] = round(record.held * 1000.0, 2)
    return fields


def _opt(value: str | None) -> str:
    return "null" if value is None else _string(value)


def _ms(seconds: float) -> str:
    """Seconds as JSON milliseconds, exactly `json.dumps(round(seconds * 1000.0, 2))`.

    Both round through the same correctly rounded decimal digits; the shortest repr of
    the rounded float is those digits without trailing zeros. A third of the cost.
    """
    text = f"{seconds * 1000.0:.2f}".rstrip("0")
    return text + "0" if text[-1] == "." else text


# Distinct routes, and client/upstream pairs, whose JSON text is remembered before the
# memo starts afresh.
_MEMO_SIZE = 4096

# An access line after its timestamp's seconds: microseconds, the route's part, path,
# status, duration, request id, the connection's part, bytes in and out, reason, the end.
_ACCESS = (
    '%s%06dZ",%s%s,"status":%d,"duration_ms":%s,"request_id":%s,%s%d,"bytes_out":%d,'
    '"reason":%s%s'
)

# Where a block of lines (emit_lines) takes each later line's timestamp: NUL, which the
# JSON of an event or a field never holds (json escapes it).
_TIMESTAMP = "\x00"

# Waiting items: (wall time, record) for access lines, (wall time, rest of line) for events.
_Item = tuple[float, AccessRecordLike | str]


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
    ) -> None:
        self._stream = stream
        self._cluster = "" if cluster is None else f'"cluster":{_encode(cluster)},'
        self._enabled = enabled
        self._flush_interval = flush_interval
        self._batch = batch
        self._wall = wall
        self._pending: list[_Item] = []
        # The loop a flush is scheduled on; None when nothing waits to be flushed.
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._second = -1
        self._second_text = ""
        self._access_head = f'"level":"info","event":"request",{self._cluster}'
        self._routes: dict[tuple[str, str, str], str] = {}
        self._peers: dict[tuple[str | None, str | None], str] = {}
        _open.add(self)

    @property
    def enabled(self) -> bool:
        return self._enabled

    def access(self, record: AccessRecordLike) -> None:
        pending = self._pending
        pending.append((self._wall(), record))
        loop = self._flush_loop
        if len(pending) >= self._batch or loop is None or loop.is_closed():
            self._appended()

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        head = f'"level":"info","event":{_encode(event)},{self._cluster}'
        body = _encode(fields)
        rest = f"{head}{body[1:]}\n" if len(body) > 2 else f"{head[:-1]}}}\n"
        self._pending.append((self._wall(), rest))
        self._appended()

    def lines_sink(self, fields: dict[str, Any]) -> Callable[[str], None]:
        """A callable taking a block of lines (joined by newlines) that writes one info
        line per line, its event the line, with `fields`: the block is one waiting item,
        escaped in one call and sharing one timestamp, and what follows each event is
        made once here. An app may print 10,000 lines a second on the event loop that
        also proxies."""
        body = _encode(fields)
        tail = (f'",{self._cluster}{body[1:]}\n' if len(body) > 2
                else f'",{self._cluster}'[:-1] + "}\n")
        lead = '"level":"info","event":"'
        # _TIMESTAMP marks where each later line's timestamp goes.
        between = f"{tail}{_TIMESTAMP}{lead}"
        wall, appended = self._wall, self._appended

        def sink(text: str) -> None:
            if "\\" not in text:
                # Without a backslash in the text, `\n` in its escaped form can only be
                # one of its newlines.
                escaped = _string(text)[1:-1].replace("\\n", between)
            else:
                # A list's items are joined by '","' in its JSON, which never occurs
                # inside an escaped string (a quote there follows a backslash).
                escaped = _encode(text.split("\n"))[2:-2].replace('","', between)
            self._pending.append((wall(), lead + escaped + tail))
            appended()

        return sink

    def _appended(self) -> None:
        if len(self._pending) >= self._batch:
            self.write_pending()
        loop = self._flush_loop
        if loop is not None and not loop.is_closed():
            return  # the flush already scheduled covers this line
        running = _get_running_loop()
        if running is None:
            self.flush()
        else:  # also recovers when the loop of an earlier flush went away
            self._flush_loop = running
            running.call_later(self._flush_interval, self.flush)

    def write_pending(self) -> None:
        """Format what waits and hand it to the stream in one write (not flushed)."""
        pending = self._pending
        if not pending:
            return
        self._pending = []
        text = self._lines(pending)
        # A closed or broken stream must not fail the request being logged.
        with contextlib.suppress(OSError, ValueError):
            self._stream.write(text)

    def flush(self) -> None:
        self._flush_loop = None
        self.write_pending()
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def _lines(self, pending: list[_Item]) -> str:
        """The text of the waiting lines: one frame per batch, one `%` format per line."""
        out: list[str] = []
        add = out.append
        routes, peers = self._routes, self._peers
        second_was, head = self._second, self._second_text
        for wall, what in pending:
            # Formatting a datetime costs ~1 µs; the seconds part changes once a second.
            second = int(wall)
            if second != second_was:
                second_was = second
                text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
                head = f'{{"timestamp":"{text}.'
            micros = int((wall - second) * 1e6)
            if isinstance(what, str):
                stamp = f'{head}{micros:06d}Z",'
                add(stamp + (what if _TIMESTAMP not in what else what.replace(_TIMESTAMP, stamp)))
                continue
            if isinstance(what, tuple):  # the data plane's AccessRecord: unpacked in C
                (app, host, method, path, status, duration, held, request_id, client,
                 upstream, bytes_in, bytes_out, reason) = what
            else:
                r = what
                app, host, method, path, status = r.app, r.host, r.method, r.path, r.status
                duration, held, request_id, client = r.duration, r.held, r.request_id, r.client
                upstream, bytes_in, bytes_out = r.upstream, r.bytes_in, r.bytes_out
                reason = r.reason
            # What repeats from request to request is escaped once and looked up after:
            # the route's part (app, host, method) and the connection's (client, upstream).
            ms = f"{duration * 1000.0:.2f}".rstrip("0")
            add(_ACCESS % (
                head, micros,
                routes.get((app, host, method)) or self._route(app, host, method),
                _string(path), status, ms + "0" if ms[-1] == "." else ms,
                _string(request_id),
                peers.get((client, upstream)) or self._peer(client, upstream),
                bytes_in, bytes_out, "null" if reason is None else _string(reason),
                "}\n" if held is None else f',"held_ms":{_ms(held)}}}\n',
            ))  # fmt: skip
        self._second, self._second_text = second_was, head
        return "".join(out)

    def _route(self, app: str, host: str, method: str) -> str:
        """The line from its level to the path's key, for one route (app null when none)."""
        routes = self._routes
        if len(routes) >= _MEMO_SIZE:
            routes.clear()
        text = routes[app, host, method] = (
            f'{self._access_head}"app":{_string(app) if app else "null"},'
            f'"host":{_string(host)},"method":{_string(method)},"path":'
        )
        return text

    def _peer(self, client: str | None, upstream: str | None) -> str:
        """The line from the client's key to the request bytes' key, for one connection pair."""
        peers = self._peers
        if len(peers) >= _MEMO_SIZE:
            peers.clear()
        text = peers[client, upstream] = (
            f'"client":{_opt(client)},"upstream":{_opt(upstream)},"bytes_in":'
        )
        return text


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

    def access(self, record: AccessRecordLike) -> None:
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
