"""Captured container output, and the `pods/{name}/log` subresource that serves it.

Owns: a bounded per-container line buffer fed by the process's merged stdout/stderr, and
reading it as the real endpoint does (`tailLines`, `limitBytes`, `timestamps`,
`sinceSeconds`/`sinceTime` (one of them, lines at or after), `follow` streaming until
the container exits). Never starts or stops processes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from .errors import BadRequest
from .meta import JSON, dig, meta, now
from .routing import query_bool

_MAX_LINES = 20_000


class LogBuffer:
    def __init__(self) -> None:
        self._lines: deque[tuple[int, datetime, bytes]] = deque(maxlen=_MAX_LINES)
        self._count = 0
        self._changed = asyncio.Event()
        self.running = False

    def started(self) -> None:
        self.running = True
        self._wake()

    def exited(self) -> None:
        self.running = False
        self._wake()

    def append(self, line: bytes) -> None:
        self._count += 1
        self._lines.append((self._count, now(), line if line.endswith(b"\n") else line + b"\n"))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def since(self, seq: int = 0) -> list[tuple[int, datetime, bytes]]:
        """Lines numbered after `seq` that are still held (the buffer is bounded)."""
        return [entry for entry in self._lines if entry[0] > seq]

    @property
    def count(self) -> int:
        return self._count

    def text(self) -> str:
        return b"".join(line for _, _, line in self._lines).decode(errors="replace")

    async def changed(self, at_most: float) -> None:
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(at_most):
                await event.wait()


def pick_container(pod: JSON, query: Any) -> str:
    names = [str(c.get("name")) for c in dig(pod, "spec", "containers") or []]
    wanted = query.get("container")
    if wanted:
        if wanted not in names:
            raise BadRequest(
                f'container {wanted} is not valid for pod {meta(pod).get("name")}'
            )
        return str(wanted)
    if len(names) != 1:
        raise BadRequest(
            f"a container name must be specified for pod {meta(pod).get('name')}, choose one of: "
            f"[{' '.join(names)}]"
        )
    return names[0]


def _render(entry: tuple[int, datetime, bytes], timestamps: bool) -> bytes:
    _, at, line = entry
    if not timestamps:
        return line
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ").encode() + b" " + line


def _since(query: Any) -> datetime | None:
    if "sinceSeconds" in query and "sinceTime" in query:
        raise BadRequest("at most one of sinceTime or sinceSeconds may be specified")
    if "sinceSeconds" in query:
        try:
            seconds = int(query["sinceSeconds"])
        except ValueError:
            seconds = 0
        if seconds < 1:
            raise BadRequest("sinceSeconds: Invalid value: must be greater than 0")
        return now() - timedelta(seconds=seconds)
    if "sinceTime" in query:
        try:
            return datetime.fromisoformat(query["sinceTime"].replace("Z", "+00:00"))
        except ValueError:
            raise BadRequest(f"sinceTime: not an RFC 3339 time: {query['sinceTime']!r}") from None
    return None


async def serve_log(request: web.Request, buffer: LogBuffer) -> web.StreamResponse:
    query = request.query
    timestamps = query_bool(query, "timestamps")
    try:
        tail = int(query["tailLines"]) if "tailLines" in query else None
        limit = int(query["limitBytes"]) if "limitBytes" in query else None
    except ValueError:
        raise BadRequest("tailLines and limitBytes must be integers") from None
    since = _since(query)
    sent = buffer.count
    entries = buffer.since(0)
    if since is not None:
        entries = [e for e in entries if e[1] >= since]
    if tail is not None:
        entries = entries[-tail:] if tail > 0 else []
    body = b"".join(_render(e, timestamps) for e in entries)
    if limit is not None:
        body = body[:limit]
    if not query_bool(query, "follow"):
        return web.Response(body=body, content_type="text/plain")
    resp = web.StreamResponse(status=200)
    resp.content_type = "text/plain"
    await resp.prepare(request)
    await resp.write(body)
    while buffer.running or buffer.count > sent:
        for entry in buffer.since(sent):
            await resp.write(_render(entry, timestamps))
            sent = entry[0]
        if buffer.running and buffer.count == sent:
            await buffer.changed(1.0)
    await resp.write_eof()
    return resp
