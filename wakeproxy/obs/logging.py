"""Log output: structlog configured once per process, and the per-request access line.

Owns the log format (JSON lines by default, a console renderer for terminals), routing
of stdlib `logging` (asyncio, aiohttp, libraries) through the same renderer, and the
access-log sink the data plane calls once per request (the lines themselves are
written by `lines.JsonLines`).

Must never: run structlog's processor chain per request in JSON mode (the access line is
formatted directly, in batches), flush the stream per access line (a timer does), or put
anything but the fields of one record on an access line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from wakeproxy.obs.lines import EventOutput, JsonLines, OrderedStream, StructlogOutput

if TYPE_CHECKING:
    from wakeproxy.dataplane.access import AccessRow

__all__ = ["EventOutput", "JsonLines", "LogFormat", "access_sink", "app_output_log",
           "configure_logging"]

LogFormat = Literal["json", "console"]

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
_FRONT = ("timestamp", "level", "event")


def access_sink(
    output: EventOutput | None = None,
) -> Callable[[AccessRow], None] | None:
    """The data plane's `access_log` callable: one `event="request"` line per request.

    Unknown hosts (app "") are logged with `app: null`. The output's own `access`, bound
    (no call in between): with JSON lines it only remembers the record; formatting and
    writing happen later, in batches. With access lines off, None: the data plane then
    does not even build the record.
    """
    out = output if output is not None else _current_output()
    return out.access if out.enabled else None


_output: EventOutput | None = None


def _current_output() -> EventOutput:
    """The access output chosen by the last `configure_logging`, else JSON on stdout."""
    global _output
    if _output is None:
        _output = JsonLines(sys.stdout)
    return _output


def app_output_log() -> Callable[[str, str, str], None]:
    """Where the output lines of app processes go in wakeproxy's own log: one info line
    each (`event` the line, with `app` and `stream`), formatted and written in batches like
    access lines, and a block of lines (what one read of a pipe brought, lines joined by
    newlines) escaped at once. A structlog call per line costs six times as much, and an
    app may print 10,000 lines a second on the event loop that also proxies."""
    out = _current_output()
    if not logging.getLogger().isEnabledFor(logging.INFO):
        return lambda app, stream, text: None
    sinks: dict[tuple[str, str], Callable[[str], None]] = {}

    def echo(app: str, stream: str, text: str) -> None:
        sink = sinks.get((app, stream))
        if sink is None:
            sink = sinks[app, stream] = out.lines_sink({"app": app, "stream": stream})
        sink(text)

    return echo


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
    access_lines: bool = True,
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
    global _output
    enabled = access_lines and lvl <= logging.INFO  # access lines are info lines
    access: EventOutput
    events: TextIO = out
    if fmt == "json":
        lines = JsonLines(out, cluster=cluster, enabled=enabled)
        access = lines
        # Other lines first write the access lines still waiting: the log keeps its order.
        events = cast(TextIO, OrderedStream(out, lines))
    else:
        access = StructlogOutput(structlog.get_logger("wakeproxy.access"), enabled=enabled)

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
        logger_factory=structlog.WriteLoggerFactory(file=events),
        cache_logger_on_first_use=False,
    )

    handler = _RoutedHandler(events)
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

    _output = access
    return access


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
