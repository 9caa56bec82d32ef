"""Watch streams: newline-delimited JSON events over one long HTTP response.

Owns the watch protocol: where a stream starts (`resourceVersion` unset or "0" → synthetic
ADDED events for the current state; a number → the events after it, or 410 Gone when the
history no longer reaches back that far — as an ERROR event in a 200 stream like the real
watch cache, or as HTTP 410 when the fault switch asks), selector filtering with the real
transitions (an object that stops matching is DELETED, one that starts matching is ADDED),
periodic BOOKMARK events carrying only `metadata.resourceVersion`, `sendInitialEvents`,
`timeoutSeconds`, and the out-of-band END/GONE orders of the fault switches. Never writes to
the store.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from aiohttp import web

from .errors import BadRequest, Gone
from .handlers import request_filter
from .history import Control, Event
from .httpio import CONTENT_TYPE, dumps
from .meta import JSON
from .routing import ApiRequest, query_bool
from .selectors import Filter
from .store import Store


@dataclass(frozen=True)
class WatchSettings:
    bookmark_interval: float
    default_timeout: float
    gone_as_http: bool


def _transition(event: Event, flt: Filter) -> tuple[str, JSON] | None:
    now_matches = flt.matches(event.obj)
    if event.type == "MODIFIED":
        was = event.old is not None and flt.matches(event.old)
        if was and now_matches:
            return "MODIFIED", event.obj
        if now_matches:
            return "ADDED", event.obj
        if was:
            return "DELETED", event.obj
        return None
    return (event.type, event.obj) if now_matches else None


def _line(kind: str, obj: JSON) -> bytes:
    return (dumps({"type": kind, "object": obj}) + "\n").encode()


def _parse_rv(value: str | None) -> int | None:
    if value in (None, "", "0"):
        return None
    assert value is not None
    if not value.isdigit():
        raise BadRequest(f"invalid resource version: {value!r}")
    return int(value)


async def serve_watch(request: web.Request, req: ApiRequest, store: Store,
                      settings: WatchSettings) -> web.StreamResponse:
    query = request.query
    flt = request_filter(req, query)
    rv = _parse_rv(query.get("resourceVersion"))
    bookmarks = query_bool(query, "allowWatchBookmarks")
    send_initial = query_bool(query, "sendInitialEvents")
    try:
        timeout = float(query.get("timeoutSeconds") or 0) or settings.default_timeout
    except ValueError:
        raise BadRequest("timeoutSeconds must be a number") from None
    history = store.history(req.rt)
    gone: Gone | None = None
    initial: list[JSON] = []
    backlog: list[Event] = []
    # Reading the backlog and subscribing happen in one synchronous step: no gap, no repeat.
    if rv is None or send_initial:
        initial = store.select(req.rt, flt)
    else:
        try:
            backlog = history.since(rv)
        except Gone as err:
            if settings.gone_as_http:
                raise
            gone = err
    sub = history.subscribe() if gone is None else None
    resp = web.StreamResponse(status=200)
    resp.content_type = CONTENT_TYPE
    resp.enable_chunked_encoding()
    try:
        await resp.prepare(request)
        if gone is not None:
            await resp.write(_line("ERROR", gone.status()))
            return resp
        assert sub is not None
        for obj in initial:
            await resp.write(_line("ADDED", obj))
        if send_initial and bookmarks:
            await resp.write(_line("BOOKMARK", _bookmark(req, store.resource_version,
                                                         initial_end=True)))
        for event in backlog:
            if (out := _transition(event, flt)) is not None:
                await resp.write(_line(*out))
        await _follow(resp, req, store, sub.queue, flt, settings, timeout, bookmarks)
    finally:
        if sub is not None:
            sub.close()
    return resp


async def _follow(resp: web.StreamResponse, req: ApiRequest, store: Store,
                  queue: asyncio.Queue[Event | Control], flt: Filter, settings: WatchSettings,
                  lifetime: float, bookmarks: bool) -> None:
    deadline = time.monotonic() + lifetime
    next_bookmark = time.monotonic() + settings.bookmark_interval
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        wait = min(deadline, next_bookmark if bookmarks else deadline) - now
        try:
            async with asyncio.timeout(max(wait, 0.0)):
                item = await queue.get()
        except TimeoutError:
            if bookmarks and time.monotonic() >= next_bookmark and queue.empty():
                # Every event up to the current version has been written: safe to bookmark.
                await resp.write(_line("BOOKMARK", _bookmark(req, store.resource_version)))
                next_bookmark = time.monotonic() + settings.bookmark_interval
            continue
        if item is Control.END:
            return
        if item is Control.GONE:
            err = Gone(f"too old resource version: {store.history(req.rt).compacted_rv}")
            await resp.write(_line("ERROR", err.status()))
            return
        assert isinstance(item, Event)
        if (out := _transition(item, flt)) is not None:
            await resp.write(_line(*out))


def _bookmark(req: ApiRequest, rv: int, *, initial_end: bool = False) -> JSON:
    m: JSON = {"resourceVersion": str(rv)}
    if initial_end:
        m["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": req.rt.kind, "apiVersion": req.rt.api_version, "metadata": m}
