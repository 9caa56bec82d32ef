"""A client that keeps requesting one host while a test changes what serves it (a deploy,
a promote), recording every outcome: no failed request is the zero-downtime promise."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Traffic:
    statuses: list[int | str] = field(default_factory=list)  # a status, or the client error
    bodies: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[int | str]:
        return [s for s in self.statuses if s != 200]


@contextlib.asynccontextmanager
async def steady_requests(
    get: Callable[[], Awaitable[tuple[int, str]]],
) -> AsyncIterator[Traffic]:
    """Request with `get` back to back until the block ends."""
    traffic, stop = Traffic(), asyncio.Event()

    async def loop() -> None:
        while not stop.is_set():
            try:
                status, text = await get()
            except aiohttp.ClientError as e:
                traffic.statuses.append(repr(e))
                continue
            traffic.statuses.append(status)
            traffic.bodies.append(text)

    task = asyncio.create_task(loop())
    try:
        yield traffic
    finally:
        stop.set()
        await task
