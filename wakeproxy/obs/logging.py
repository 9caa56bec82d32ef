"""Log output: structlog configured once per process, and the per-request access line.

Owns the log format (JSON lines by default, a console renderer for terminals), routing
of stdlib `logging` (asyncio, aiohttp, libraries) through the same renderer, and the
access-log sink the data plane calls once per request.

Must never: run structlog's processor chain per request in JSON mode (the access line is
encoded directly), flush the stream per access line (a timer does), or put anything but
the fields of one record on an access line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

# Like asyncio.get_running_loop, but None outside a loop instead of raising per call.
_get_running_loop = asyncio.events._get_running_loop

LogFormat = Literal["json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FRONT = ("timestamp", "level", "event")
# default=str: a stray non-JSON value must never fail the request that is being logged.
_encode = json.JSONEncoder(separators=(",", ":"), default=str).encode


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
    """Where the access sink writes: `emit(event, fields)` at info level."""

    @property
    def enabled(self) -> bool: ...

    def emit(self, event: str, fields: dict[str, Any]) -> None: ...


class JsonLines:
    """One JSON object per line on a text stream, without structlog's per-event chain.

    Lines go into the stream's own buffer; inside a running event loop the buffer is
    flushed at most `flush_interval` after the first unflushed line, outside one at once.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        cluster: str | None = None,
        enabled: bool = True,
        flush_interval: float = 0.25,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._stream = stream
        self._write = stream.write
        self._cluster = "" if cluster is None else f'"cluster":{_encode(cluster)},'
        self._enabled = enabled
        self._flush_interval = flush_interval
        # The loop a flush is scheduled on; None when nothing waits to be flushed.
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._wall = wall
        self._second = -1
        self._second_text = ""
        self._heads: dict[str, str] = {}  # event → its constant part of the line

    @property
    def enabled(self) -> bool:
        return self._enabled

    def emit(self, event: str, fields: dict[str, Any]) -> None:
        head = self._heads.get(event)
        if head is None:
            head = self._heads[event] = f'"level":"info","event":{_encode(event)},{self._cluster}'
        body = _encode(fields)
        if len(body) > 2:
            self._write(f'{{"timestamp":"{self._timestamp()}",{head}{body[1:]}\n')
        else:
            self._write(f'{{"timestamp":"{self._timestamp()}",{head[:-1]}}}\n')
        loop = _get_running_loop()
        if loop is None:
            self.flush()
        elif loop is not self._flush_loop:  # also recovers if an earlier loop went away
            self._flush_loop = loop
            loop.call_later(self._flush_interval, self.flush)

    def flush(self) -> None:
        self._flush_loop = None
        # A closed or broken stream must not fail the request being logged.
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()

    def _timestamp(self) -> str:
        # Formatting a datetime costs ~1 µs; the seconds part changes once a second.
        now = self._wall()
        second = int(now)
        if second != self._second:
            self._second = second
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._second_text}.{int((now - second) * 1e6):06d}Z"


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


class AccessLogSink:
    """The data plane's `access_log` callable: one `event="request"` line per request.

    Unknown hosts (app "") are logged with `app: null`.
    """

    __slots__ = ("_emit", "_enabled")

    def __init__(self, output: EventOutput | None = None) -> None:
        out = output if output is not None else _current_output()
        self._emit = out.emit
        self._enabled = out.enabled

    def __call__(self, record: AccessRecordLike) -> None:
        if not self._enabled:
            return
        fields = {
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
        held = record.held
        if held is not None:
            fields["held_ms"] = round(held * 1000.0, 2)
        self._emit("request", fields)


_output: EventOutput | None = None


def _current_output() -> EventOutput:
    """The access output chosen by the last `configure_logging`, else JSON on stdout."""
    global _output
    if _output is None:
        _output = JsonLines(sys.stdout)
    return _output


def _front_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level and event first so JSON lines read left to right."""
    front = {k: event_dict.pop(k) for k in _FRONT if k in event_dict}
    front.update(event_dict)
    return front


def _cluster_adder(cluster: str) -> Processor:
    def add_cluster(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("cluster", cluster)
        return event_dict

    return add_cluster


class _RoutedHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The one stdlib handler this module installs (replaced on reconfiguration)."""


def configure_logging(
    fmt: LogFormat | str = "json",
    level: str = "info",
    *,
    cluster: str | None = None,
    stream: TextIO | None = None,
) -> EventOutput:
    """Configure structlog and stdlib logging for the process; returns the access output.

    Raises ValueError for an unknown format or level (the config parser rejects them first).
    """
    if fmt not in ("json", "console"):
        raise ValueError(f"log format: expected json or console, got {fmt!r}")
    lvl = _LEVELS.get(level.lower())
    if lvl is None:
        raise ValueError(f"log level: expected one of {', '.join(_LEVELS)}, got {level!r}")
    out = stream if stream is not None else sys.stdout

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if cluster:
        shared.append(_cluster_adder(cluster))
    renderer: Processor
    tail: list[Processor]
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(separators=(",", ":"))
        tail = [structlog.processors.format_exc_info, _front_fields]
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=_is_tty(out))
        tail = []

    structlog.configure(
        processors=[*shared, structlog.processors.StackInfoRenderer(), *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    handler = _RoutedHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RoutedHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(lvl)
    logging.captureWarnings(True)
    # Every request already gets one access line from the data plane; aiohttp's own
    # access logger (admin API, if a runner forgets access_log=None) would duplicate it.
    logging.getLogger("aiohttp.access").disabled = True

    global _output
    enabled = lvl <= logging.INFO
    if fmt == "json":
        _output = JsonLines(out, cluster=cluster, enabled=enabled)
    else:
        _output = StructlogOutput(structlog.get_logger("wakeproxy.access"), enabled=enabled)
    return _output


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
