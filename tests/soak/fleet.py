"""A client fleet for the churn soak: bursts of traffic per app with quiet gaps around its
`idle_after`, so each app is put to sleep and woken again and again while others are busy.

Every request's answer is checked end to end: a GET must come back naming its own path,
a POST must echo its exact body, a WebSocket message must echo its exact text. Anything
else — an error status, a wrong body, an exception (connection reset, timeout) — is
counted and its first examples kept for the failure message.
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp

# A request that takes this long is lost, not slow: a wake takes tens of milliseconds.
REQUEST_TIMEOUT = 30.0
LARGE = os.urandom(320 * 1024)  # sliced for uploads above the proxy's 64 KiB buffers


@dataclass
class Tally:
    sent: collections.Counter[str] = field(default_factory=collections.Counter)
    answered: int = 0
    lost: int = 0  # no answer at all: an exception instead of a response
    server_errors: int = 0  # 5xx
    wrong: int = 0  # an answer, but not the right one
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def problem(self, text: str) -> None:
        if len(self.problems) < 20:
            self.problems.append(text)


@dataclass
class Shape:
    """How the traffic of one app alternates between bursts and quiet gaps."""

    workers: int = 4  # concurrent HTTP workers during a burst
    burst: tuple[float, float] = (0.02, 0.3)  # seconds
    gap: tuple[float, float] = (0.0, 0.4)  # seconds; around idle_after, on both sides
    ws_messages: int = 16  # per WebSocket, one WebSocket per burst


class Fleet:
    def __init__(self, session: aiohttp.ClientSession, url: str, seed: int) -> None:
        self.session = session
        self.url = url
        self.tally = Tally()
        self.stop = asyncio.Event()
        self._rng = random.Random(seed)
        self._seq = 0

    async def drive(self, app: str, shape: Shape) -> None:
        """Bursts and gaps for `app` until `stop` is set."""
        loop = asyncio.get_running_loop()
        while not self.stop.is_set():
            end = loop.time() + self._rng.uniform(*shape.burst)
            await asyncio.gather(
                *(self._http_worker(app, end) for _ in range(shape.workers)),
                self._ws_worker(app, shape.ws_messages),
            )
            await asyncio.sleep(self._rng.uniform(*shape.gap))

    def _next(self) -> int:
        self._seq += 1
        return self._seq

    async def _http_worker(self, app: str, end: float) -> None:
        loop = asyncio.get_running_loop()
        while loop.time() < end and not self.stop.is_set():
            roll = self._rng.random()
            if roll < 0.5:
                await self._get(app)
            elif roll < 0.8:
                await self._post(app, os.urandom(self._rng.randrange(0, 4096)), chunked=False)
            elif roll < 0.9:
                await self._post(app, os.urandom(self._rng.randrange(1, 8192)), chunked=True)
            else:
                start = self._rng.randrange(0, 1024)
                size = self._rng.randrange(70 * 1024, 300 * 1024)
                await self._post(app, LARGE[start : start + size], chunked=roll < 0.95)

    async def _get(self, app: str) -> None:
        path = f"/hello/{self._next()}"
        self.tally.sent["get"] += 1
        try:
            async with self.session.get(
                self.url + path, headers={"Host": f"{app}.localhost"}
            ) as r:
                body = await r.read()
                self._check(app, "GET " + path, r.status, body, f"{app} {path}".encode())
        except (aiohttp.ClientError, TimeoutError) as e:
            self._lost(app, "GET " + path, e)

    async def _post(self, app: str, body: bytes, *, chunked: bool) -> None:
        n = self._next()
        what = f"POST /echo#{n} ({len(body)} bytes{', chunked' if chunked else ''})"
        self.tally.sent["post"] += 1
        data: bytes | AsyncIterator[bytes] = _pieces(body) if chunked else body
        try:
            async with self.session.post(
                self.url + "/echo", data=data, headers={"Host": f"{app}.localhost"}
            ) as r:
                got = await r.read()
                self._check(app, what, r.status, got, body)
        except (aiohttp.ClientError, TimeoutError) as e:
            self._lost(app, what, e)

    async def _ws_worker(self, app: str, messages: int) -> None:
        n = self._next()
        self.tally.sent["ws_upgrade"] += 1
        try:
            async with self.session.ws_connect(
                self.url + "/ws", headers={"Host": f"{app}.localhost"}
            ) as ws:
                self.tally.answered += 1
                for i in range(messages):
                    text = f"{app}-{n}-{i}-" + "m" * self._rng.randrange(0, 200)
                    self.tally.sent["ws_message"] += 1
                    await ws.send_str(text)
                    got = await ws.receive(timeout=REQUEST_TIMEOUT)
                    if got.type != aiohttp.WSMsgType.TEXT or got.data != text:
                        self.tally.wrong += 1
                        self.tally.problem(f"{app} ws message {i}: got {got.type} {got.data!r}")
                        return
                    self.tally.answered += 1
        except aiohttp.WSServerHandshakeError as e:
            self._check(app, "WebSocket upgrade", e.status, b"", b"")
        except (aiohttp.ClientError, TimeoutError) as e:
            self._lost(app, "WebSocket", e)

    def _check(self, app: str, what: str, status: int, body: bytes, want: bytes) -> None:
        if status >= 500:
            self.tally.server_errors += 1
            self.tally.problem(f"{app} {what}: {status} {body[:200]!r}")
        elif status != 200 or body != want:
            self.tally.wrong += 1
            self.tally.problem(f"{app} {what}: {status}, {len(body)} bytes {body[:80]!r}")
        else:
            self.tally.answered += 1

    def _lost(self, app: str, what: str, error: BaseException) -> None:
        self.tally.lost += 1
        self.tally.problem(f"{app} {what}: lost ({type(error).__name__}: {error})")


async def _pieces(body: bytes) -> AsyncIterator[bytes]:
    """The body in a few pieces, so it goes out chunked."""
    step = max(1, len(body) // 3)
    for i in range(0, len(body), step):
        yield body[i : i + step]
        await asyncio.sleep(0)
