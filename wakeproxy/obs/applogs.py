"""`GET /api/v1/apps/{name}/logs`: an app's own output, streamed as plain text lines.

`?lines=N` (default 100) of recent output first, then with `?follow=1` every new line
until the client hangs up. Lines starting with `==> ` are wakeproxy's markers (the app
started, went to sleep, lines dropped for a reader that fell behind). The platform says
where output comes from (`AppOutput`); it needs the admin token like build logs
(`PRIVATE_READ`), since an app may print what not everyone should see.
Must never: make the app or other readers wait for this reader (its queue is bounded).
"""

from __future__ import annotations

import asyncio
from typing import Protocol, runtime_checkable

from aiohttp import web

from wakeproxy.model.applog import Follower
from wakeproxy.model.board import ReadinessBoard
from wakeproxy.obs.api_errors import BadRequest, NotFound

PATH = "/api/v1/apps/{name}/logs"
PRIVATE_READ = "/api/v1/apps/*/logs"  # a pattern for the admin API's private reads
DEFAULT_LINES = 100
MAX_LINES = 1000  # an app keeps no more (model.applog.LOG_LINES)
_GATHER = 0.005  # seconds lines gather between two writes to one reader
_CHECK_GONE = 1.0  # seconds between checks whether a quiet stream's reader hung up


@runtime_checkable
class AppOutput(Protocol):
    def follow_output(self, app: str, backlog: int, *, follow: bool) -> Follower:
        """The app's last `backlog` lines and, if `follow`, those to come; LookupError
        for an app the platform does not know."""
        ...


def _lines(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_LINES
    try:
        count = int(raw)
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_LINES:
        raise BadRequest(f"lines must be a whole number from 0 to {MAX_LINES}, got {raw!r}")
    return count


def add_app_log_routes(app: web.Application, board: ReadinessBoard, output: AppOutput) -> None:
    async def app_logs(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if board.get(name) is None:
            raise NotFound(f"no app named {name!r}")
        backlog = _lines(request.query.get("lines"))
        follow = request.query.get("follow", "") in ("1", "true", "yes")
        try:
            follower = output.follow_output(name, backlog, follow=follow)
        except LookupError:
            raise NotFound(f"no app named {name!r}") from None
        try:
            response = web.StreamResponse(
                headers={"Content-Type": "text/plain; charset=utf-8",
                         "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            while (text := await follower.next_text(within=_CHECK_GONE)) is not None:
                if text:
                    # One write per batch, and batches a few milliseconds apart: a busy
                    # app costs the event loop a write per interval, not one per line.
                    await response.write(text.encode())
                    await asyncio.sleep(_GATHER)
                elif request.transport is None or request.transport.is_closing():
                    break  # a quiet stream learns of a hang-up only by looking
            await response.write_eof()
        finally:
            follower.close()
        return response

    app.router.add_get(PATH, app_logs)
