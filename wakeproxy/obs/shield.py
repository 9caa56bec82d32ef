"""Admin commands that outlive the request that asked for them.

A client that hangs up (or an admin timeout) must never cancel a wake, a sleep, a deploy
or a delete half-way. Must never: swallow the outcome silently — it is always retrieved,
so a command that fails after its requester left logs no "exception never retrieved".
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def shielded(coro: Coroutine[Any, Any, T]) -> asyncio.Future[T]:
    """Run `coro` as its own task; awaiting the result can be cancelled, the task not."""
    task = asyncio.ensure_future(coro)
    task.add_done_callback(_retrieve)
    return asyncio.shield(task)


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
