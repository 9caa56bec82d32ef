"""Answers the data plane makes itself: error types, their one status table, and the renderer.

Every error body is short plain text naming the app (or host) and the reason. Never a
traceback, never the app's internals.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import ClassVar

# Seconds a client is asked to wait before retrying a request we turned away.
RETRY_AFTER = 5


class ProxyError(Exception):
    """An answer we give instead of the app's. `message` names the app or host and why.

    `retries`: the answer says when to try again (`Retry-After`, RETRY_AFTER seconds
    unless given): a passing state of the app or the proxy, not a fault of the request.
    """

    kind: ClassVar[str] = "error"
    retries: ClassVar[bool] = False

    def __init__(self, message: str, *, app: str = "", retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.app = app
        if retry_after is None and self.retries:
            retry_after = RETRY_AFTER
        self.retry_after = retry_after


class BadRequest(ProxyError):
    pass


class UnknownHost(ProxyError):
    pass


class MethodNotAllowed(ProxyError):
    pass


class HeadTimeout(ProxyError):
    pass


class HeadTooLarge(ProxyError):
    pass


class UriTooLong(ProxyError):
    pass


class BodyTimeout(ProxyError):
    pass


class ClientGone(ProxyError):
    """Never sent: the client is not there to read it. Logged as 499."""


class UpstreamFailed(ProxyError):
    pass


class WakeFailed(ProxyError):
    pass


class InternalError(ProxyError):
    """Something unexpected broke while handling the request; details go to the log only."""


class HoldQueueFull(ProxyError):
    retries = True


class AppUnavailable(ProxyError):
    retries = True


class ShuttingDown(ProxyError):
    retries = True


class WakeTimeout(ProxyError):
    retries = True


class ResponseTimeout(ProxyError):
    retries = True


STATUS: dict[type[ProxyError], int] = {
    BadRequest: 400,
    UnknownHost: 404,
    MethodNotAllowed: 405,
    HeadTimeout: 408,
    BodyTimeout: 408,
    UriTooLong: 414,
    HeadTooLarge: 431,
    ClientGone: 499,
    UpstreamFailed: 502,
    WakeFailed: 502,
    InternalError: 502,
    HoldQueueFull: 503,
    AppUnavailable: 503,
    ShuttingDown: 503,
    WakeTimeout: 504,
    ResponseTimeout: 504,
}

# Errors after which the connection's framing can no longer be trusted.
CLOSES_CONNECTION: frozenset[type[ProxyError]] = frozenset(
    {BadRequest, MethodNotAllowed, HeadTimeout, BodyTimeout, UriTooLong, HeadTooLarge,
     InternalError}
)


def status_of(error: ProxyError) -> int:
    return STATUS[type(error)]


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def status_line(status: int) -> bytes:
    return f"HTTP/1.1 {status} {phrase(status)}\r\n".encode("latin-1")


def render(
    error: ProxyError, *, close: bool, request_id: bytes = b"", head_only: bool = False
) -> bytes:
    """The complete response bytes for `error`; `head_only` for an answer to HEAD."""
    status = status_of(error)
    body = f"{status} {phrase(status)}: {error.message}\n".encode("utf-8", "replace")
    return render_own(
        status, b"text/plain; charset=utf-8", body, retry_after=error.retry_after,
        close=close, request_id=request_id, head_only=head_only,
    )


def render_own(
    status: int, content_type: bytes, body: bytes, *, retry_after: int | None, close: bool,
    request_id: bytes, head_only: bool,
) -> bytes:
    """Every response wakeproxy writes itself: never cached, always framed by length."""
    head = [
        status_line(status),
        b"Content-Type: " + content_type + b"\r\n",
        b"Content-Length: %d\r\n" % len(body),
        b"Cache-Control: no-store\r\n",
    ]
    if retry_after is not None:
        head.append(b"Retry-After: %d\r\n" % retry_after)
    if request_id:
        head.append(b"X-Request-Id: " + request_id + b"\r\n")
    if close:
        head.append(b"Connection: close\r\n")
    head.append(b"\r\n")
    if not head_only:
        head.append(body)
    return b"".join(head)
