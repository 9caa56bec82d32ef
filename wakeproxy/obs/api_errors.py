"""Admin API errors: each is a type, `STATUS` is the one table of error → HTTP status.

Every error leaves as JSON `{"error": "..."}`. Must never: put a traceback, an exception's
repr or internal state into a response body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

log = structlog.get_logger("wakeproxy.admin")


class ApiError(Exception):
    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError): ...


class Unauthorized(ApiError): ...


class Forbidden(ApiError): ...


class NotFound(ApiError): ...


class UnsupportedMediaType(ApiError): ...


class TooManyRequests(ApiError): ...


class MethodNotAllowed(ApiError): ...


class CommandFailed(ApiError): ...


class CommandTimedOut(ApiError): ...


class InternalError(ApiError): ...


class Unavailable(ApiError): ...


class Conflict(ApiError): ...


STATUS: dict[type[ApiError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    MethodNotAllowed: 405,
    Conflict: 409,
    UnsupportedMediaType: 415,
    TooManyRequests: 429,
    InternalError: 500,
    CommandFailed: 502,
    Unavailable: 503,
    CommandTimedOut: 504,
}


def error_response(err: ApiError) -> web.Response:
    return web.json_response({"error": err.message}, status=STATUS[type(err)], headers=err.headers)


def _from_http(request: web.Request, exc: web.HTTPException) -> ApiError:
    if exc.status == 405:
        allow = exc.headers.get("Allow", "")
        return MethodNotAllowed(
            f"{request.method} is not allowed on {request.path} (allowed: {allow})",
            {"Allow": allow},
        )
    if exc.status == 404:
        return NotFound(f"no such endpoint: {request.path}")
    if exc.status < 500:
        return BadRequest(exc.reason)
    return InternalError(exc.reason)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as e:
        return error_response(e)
    except web.HTTPException as e:
        if e.status < 400:
            raise
        return error_response(_from_http(request, e))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("admin request failed", method=request.method, path=request.path)
        return error_response(InternalError("internal error; the wakeproxy log has details"))
