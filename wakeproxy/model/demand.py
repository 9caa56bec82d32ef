"""Wake demand: the data plane asks, the control plane decides.

The data plane calls `request(app)` for every request it has to hold; asking many times
is cheap and harmless — the waker is the single flight that turns demand into at most
one wake per app at a time.
"""

from __future__ import annotations

import asyncio


class WakeDemand:
    def __init__(self) -> None:
        self._pending: dict[str, None] = {}  # insertion-ordered set: fair to first asker
        self._event = asyncio.Event()

    def request(self, app: str) -> None:
        self._pending[app] = None
        self._event.set()

    async def take(self) -> list[str]:
        """Wait for demand, then return every app asked for since the last take."""
        while not self._pending:
            self._event.clear()
            await self._event.wait()
        apps = list(self._pending)
        self._pending.clear()
        self._event.clear()
        return apps

    def pending(self) -> bool:
        return bool(self._pending)
