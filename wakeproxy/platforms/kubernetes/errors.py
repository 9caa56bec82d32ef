"""Failures of Kubernetes API calls, as types: what went wrong and when to try again.

Built from an HTTP answer (its status, the `Status` object in its body, its Retry-After)
or from no answer at all (connection refused, TLS failure, timeout: status 0). Never
retries anything itself: callers decide, with `retry_after` as the floor of their wait.
"""

from __future__ import annotations

import json
from collections.abc import Mapping


class ApiError(Exception):
    """An API call failed. `status` 0 means no answer came."""

    status = 0

    def __init__(self, message: str, *, status: int | None = None, reason: str = "",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status
        self.message = message
        self.reason = reason
        self.retry_after = retry_after

    @property
    def transient(self) -> bool:
        """Worth retrying as is: no answer, throttled, or a server-side failure."""
        return self.status == 0 or self.status == 429 or self.status >= 500


class Unreachable(ApiError):
    """No answer: the API server is down, unreachable, or too slow."""


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    """409: a precondition (resourceVersion) failed, or the object already exists."""

    status = 409


class Gone(ApiError):
    """410: the resourceVersion asked for is too old; relist."""

    status = 410


class TooManyRequests(ApiError):
    status = 429


class ServerError(ApiError):
    """5xx."""


_BY_STATUS: dict[int, type[ApiError]] = {
    404: NotFound, 409: Conflict, 410: Gone, 429: TooManyRequests,
}


def _retry_after(headers: Mapping[str, str] | None, details: Mapping[str, object]) -> float | None:
    raw = headers.get("Retry-After") if headers is not None else None
    if raw is not None and raw.strip().isdigit():
        return float(raw.strip())
    seconds = details.get("retryAfterSeconds")
    if isinstance(seconds, int | float) and not isinstance(seconds, bool):
        return float(seconds)
    return None


def error_from_status(status: int, body: str | bytes | None,
                      headers: Mapping[str, str] | None = None) -> ApiError:
    """The typed error for an HTTP answer (or an ERROR watch event's Status object)."""
    message, reason = f"HTTP {status}", ""
    details: Mapping[str, object] = {}
    if body:
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if isinstance(doc, dict):
            message = str(doc.get("message") or message)
            reason = str(doc.get("reason") or "")
            raw_details = doc.get("details")
            if isinstance(raw_details, dict):
                details = raw_details
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else ApiError)
    return cls(message, status=status, reason=reason,
               retry_after=_retry_after(headers, details))
