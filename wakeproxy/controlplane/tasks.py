"""Background tasks with a name and a guard: a crash is logged once, then re-raised.

Never swallows an error: whoever awaits the task still gets it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

T = TypeVar("T")

log = structlog.get_logger("wakeproxy.tasks")


def spawn(coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
    task = asyncio.create_task(guarded(coro, name), name=name)
    task.add_done_callback(_retrieve)
    return task


async def guarded(coro: Coroutine[Any, Any, T], name: str) -> T:
    """Run `coro`; log a crash with the task's name and re-raise it."""
    try:
        return await coro
    except asyncio.CancelledError:
        raise
    except BaseException:
        log.exception("background task crashed", task=name)
        raise


def _retrieve(task: asyncio.Task[Any]) -> None:
    # The guard already logged the crash; fetching the exception keeps asyncio from
    # reporting it a second time when nobody awaits the task.
    if not task.cancelled():
        task.exception()
