"""Waits between retries: exponential with jitter, never shorter than a Retry-After.

Owns only the arithmetic; callers sleep. A server that says when to come back is obeyed
(up to `ceiling`), so a throttled API is not hammered by every replica at once.
"""

from __future__ import annotations

import random

from wakeproxy.platforms.kubernetes.errors import ApiError


class Backoff:
    def __init__(self, *, initial: float = 0.1, maximum: float = 10.0,
                 ceiling: float = 60.0) -> None:
        self._initial = initial
        self._maximum = maximum
        self._ceiling = ceiling
        self._next = initial

    def reset(self) -> None:
        self._next = self._initial

    def delay(self, error: BaseException | None = None) -> float:
        """The wait before the next attempt (and the one after grows)."""
        base = self._next
        self._next = min(self._next * 2, self._maximum)
        wait = base * random.uniform(0.5, 1.0)  # jitter: replicas must not retry in step
        if isinstance(error, ApiError) and error.retry_after is not None:
            wait = max(wait, min(error.retry_after, self._ceiling))
        return wait
